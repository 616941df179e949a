//! The last layer, applied by `insitu-sandbox-init confine` inside the sandbox, after bubblewrap
//! has made the mounts and just before the job's program is executed: Landlock (file access only
//! beneath the given folders; no TCP bind or connect) and seccomp filters (the system calls a
//! data job never needs, refused with `EPERM`, and on x86-64 every x32 call). A job with an
//! egress may also use IP sockets ([`Network::Loopback`]): its network namespace, which holds
//! only its own loopback, is what keeps it in.

use std::{collections::BTreeMap, path::Path};

use landlock::{
    ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    path_beneath_rules,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Why confinement could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// Landlock failed (other than by being unsupported, which is reported as not enforced).
    #[error("landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    /// The seccomp filter could not be built or loaded.
    #[error("seccomp: {0}")]
    Seccomp(String),
}

/// How far Landlock could be enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LandlockStatus {
    /// Every right this crate knows is restricted.
    Full,
    /// The kernel's Landlock is older: the rights it knows are restricted.
    Partial,
    /// No Landlock in this kernel.
    None,
}

/// The newest Landlock ABI the rules are written for; older kernels get what they support.
const LANDLOCK_ABI: ABI = ABI::V5;

/// Rights beneath a folder the job writes results to: regular files and folders only (no
/// symbolic link, FIFO, socket or device a keeper could be tricked into following or blocking
/// on when it collects the results).
fn results_access() -> landlock::BitFlags<AccessFs> {
    AccessFs::from_all(LANDLOCK_ABI)
        & !(AccessFs::MakeSym
            | AccessFs::MakeFifo
            | AccessFs::MakeSock
            | AccessFs::MakeChar
            | AccessFs::MakeBlock)
}

/// What a confined process may do with the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Unix sockets only: no IP socket can be made, no TCP bind or connect.
    None,
    /// Also IP sockets, TCP bind and connect: for a job with an egress, whose network namespace
    /// holds its own loopback and nothing else (the namespace is what keeps it in).
    Loopback,
}

/// Restricts this process (and what it executes) to reading beneath `read`, reading and writing
/// beneath `scratch` (any kind of file), and reading and writing regular files and folders only
/// beneath `results`; with [`Network::None`], refuses TCP bind and connect.
///
/// # Errors
///
/// [`ConfineError::Landlock`] when a path cannot be opened or the ruleset not applied.
pub fn landlock(
    read: &[&Path],
    scratch: &[&Path],
    results: &[&Path],
    network: Network,
) -> Result<LandlockStatus, ConfineError> {
    let ruleset = Ruleset::default().handle_access(AccessFs::from_all(LANDLOCK_ABI))?;
    let ruleset = match network {
        Network::None => ruleset.handle_access(AccessNet::from_all(LANDLOCK_ABI))?,
        Network::Loopback => ruleset,
    };
    let status = ruleset
        .create()?
        .add_rules(path_beneath_rules(read, AccessFs::from_read(LANDLOCK_ABI)))?
        .add_rules(path_beneath_rules(
            scratch,
            AccessFs::from_all(LANDLOCK_ABI),
        ))?
        .add_rules(path_beneath_rules(results, results_access()))?
        .restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockStatus::Full,
        RulesetStatus::PartiallyEnforced => LandlockStatus::Partial,
        RulesetStatus::NotEnforced => LandlockStatus::None,
    })
}

/// System calls refused outright: namespaces and mounts (escape routes), tracing other
/// processes, kernel keyrings, BPF, performance counters, io_uring (whose operations seccomp
/// cannot see), modules, reboot, swap, the kernel log, accounting and userfaultfd.
const REFUSED: &[i64] = &[
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_quotactl,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_adjtimex,
    libc::SYS_personality,
];

/// Flags of `clone` that make new namespaces.
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

fn seccomp_error(error: impl std::fmt::Display) -> ConfineError {
    ConfineError::Seccomp(error.to_string())
}

fn arch() -> Result<TargetArch, ConfineError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(seccomp_error)
}

/// The filter refusing with `EPERM`: [`REFUSED`], sockets of any family but Unix (no network,
/// even where a namespace would let one through) or, with [`Network::Loopback`], but Unix and
/// IP; and `clone` with a namespace flag.
fn refusals(network: Network) -> Result<BpfProgram, ConfineError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        REFUSED.iter().map(|call| (*call, Vec::new())).collect();
    let families: &[libc::c_int] = match network {
        Network::None => &[libc::AF_UNIX],
        Network::Loopback => &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6],
    };
    // One rule: the family is none of those allowed (its conditions must all hold).
    let not_allowed = families
        .iter()
        .map(|family| {
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *family as u64)
                .map_err(seccomp_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(not_allowed).map_err(seccomp_error)?],
    );
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|flag| {
            let flag = *flag as u64;
            SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .and_then(|condition| SeccompRule::new(vec![condition]))
            .map_err(seccomp_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(seccomp_error)?;
    filter.try_into().map_err(seccomp_error)
}

/// The filter answering `clone3` with `ENOSYS`: its flags live in memory seccomp cannot read, so
/// it is refused as if the kernel were older, and the C library falls back to `clone`.
fn no_clone3() -> Result<BpfProgram, ConfineError> {
    let rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(seccomp_error)?;
    filter.try_into().map_err(seccomp_error)
}

/// The filter refusing (`EPERM`) every x32 system call. On x86-64, x32 calls carry the x86-64
/// architecture value with bit 30 set in their number, so the other filters (written for the
/// native numbers) would let them all through on a kernel with x32 enabled. The generated filters
/// have no rule that says "every number at or above a bound", hence these four instructions.
#[cfg(target_arch = "x86_64")]
fn no_x32() -> BpfProgram {
    use seccompiler::sock_filter;
    // Classic BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
    const LOAD_WORD_ABSOLUTE: u16 = 0x20; // BPF_LD (0x00) | BPF_W (0x00) | BPF_ABS (0x20)
    const JUMP_IF_AT_LEAST: u16 = 0x35; // BPF_JMP (0x05) | BPF_JGE (0x30) | BPF_K (0x00)
    const RETURN: u16 = 0x06; // BPF_RET (0x06) | BPF_K (0x00)
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let number_offset = 0; // seccomp_data.nr
    vec![
        sock_filter {
            code: LOAD_WORD_ABSOLUTE,
            jt: 0,
            jf: 0,
            k: number_offset,
        },
        sock_filter {
            code: JUMP_IF_AT_LEAST,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        sock_filter {
            code: RETURN,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        sock_filter {
            code: RETURN,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ]
}

/// Loads the seccomp filters into this process (and what it executes), the sockets allowed by
/// `network`. Sets `no_new_privs`.
///
/// # Errors
///
/// [`ConfineError::Seccomp`] when a filter cannot be built or loaded.
pub fn seccomp(network: Network) -> Result<(), ConfineError> {
    #[allow(unused_mut)]
    let mut programs = vec![refusals(network)?, no_clone3()?];
    #[cfg(target_arch = "x86_64")]
    programs.push(no_x32());
    for program in programs {
        seccompiler::apply_filter(&program).map_err(seccomp_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_for_this_machine() {
        assert!(!refusals(Network::None).unwrap().is_empty());
        assert!(
            refusals(Network::Loopback).unwrap().len() > refusals(Network::None).unwrap().len()
        );
        assert!(!no_clone3().unwrap().is_empty());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(no_x32().len(), 4);
    }
}
