//! A job's one way out: its egress.
//!
//! A job's network namespace holds nothing but its own loopback, so no address outside can be
//! reached from it. A job given an [`Egress`] (a federated-learning client that must talk to its
//! aggregator, for example) gets exactly one way out, made of two halves joined by a Unix socket
//! that is the only thing shared between the job's network and the host's:
//!
//! - **inside** ([`forward`], run by the supervisor): a TCP listener on `127.0.0.1:port` in the
//!   job's namespace, bound before the supervisor confines itself; each connection to it is
//!   joined to the socket;
//! - **outside** ([`HostRelay`], run by the sandbox next to the job): each connection on the
//!   socket is joined to the one address the keeper chose, and to nothing else: the job cannot
//!   name a destination, only use the one it was given.
//!
//! Whatever else the job tries (another address, another port, a name, UDP) finds its own
//! loopback or no route at all.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UnixListener, UnixStream},
    task::{JoinHandle, JoinSet},
};

/// Where the socket's folder is mounted inside a job.
pub const SOCKET_FOLDER_INSIDE: &str = "/.insitu/relay";

/// The socket's file name in its folder.
pub const SOCKET_NAME: &str = "relay.sock";

/// Connections one job may have open through its egress at once; more wait for one to end
/// (inside) or are closed at once (outside).
pub const MAX_CONNECTIONS: usize = 16;

/// Time allowed to open the connection to the destination.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A job's one way out: connections to `127.0.0.1:port` inside the job reach `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// The port the job connects to, on its own loopback (1 to 65535).
    pub port: u16,
    /// The one address outside its connections reach (checked by the caller: the sandbox
    /// connects to it as given).
    pub to: SocketAddr,
}

/// What went through a job's egress.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    connections: AtomicU64,
}

/// The host's half of an egress: the socket, and the task joining its connections to the
/// destination. Dropping it closes the socket and every connection.
#[derive(Debug)]
pub(crate) struct HostRelay {
    folder: tempfile::TempDir,
    task: JoinHandle<()>,
    counters: Arc<Counters>,
}

/// Bytes and connections that went through an egress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressUse {
    /// Bytes the job sent to the destination.
    pub sent_bytes: u64,
    /// Bytes the destination sent to the job.
    pub received_bytes: u64,
    /// Connections opened to the destination.
    pub connections: u64,
}

impl HostRelay {
    /// Makes the socket in a fresh folder (given to `account`, when set, mode 0700) and starts
    /// joining its connections to `to`.
    ///
    /// # Errors
    ///
    /// When the folder or the socket cannot be made.
    pub(crate) fn start(to: SocketAddr, account: Option<(u32, u32)>) -> io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let folder = tempfile::Builder::new().prefix("insitu-relay-").tempdir()?;
        let socket = folder.path().join(SOCKET_NAME);
        let listener = UnixListener::bind(&socket)?;
        if let Some((uid, gid)) = account {
            std::os::unix::fs::chown(folder.path(), Some(uid), Some(gid))?;
            std::os::unix::fs::chown(&socket, Some(uid), Some(gid))?;
        }
        std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o700))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(serve(listener, to, counters.clone()));
        Ok(Self {
            folder,
            task,
            counters,
        })
    }

    /// The host folder holding the socket (mounted at [`SOCKET_FOLDER_INSIDE`]).
    pub(crate) fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// What went through so far.
    pub(crate) fn usage(&self) -> EgressUse {
        EgressUse {
            sent_bytes: self.counters.sent.load(Ordering::Relaxed),
            received_bytes: self.counters.received.load(Ordering::Relaxed),
            connections: self.counters.connections.load(Ordering::Relaxed),
        }
    }
}

impl Drop for HostRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts the job's connections on `listener` and joins each to `to` (at most
/// [`MAX_CONNECTIONS`] at once). The connections end with this task.
async fn serve(listener: UnixListener, to: SocketAddr, counters: Arc<Counters>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inside, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if connections.len() >= MAX_CONNECTIONS {
                    tracing::warn!(%to, "egress: too many connections at once; one refused");
                    continue;
                }
                connections.spawn(join(inside, to, counters.clone()));
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Joins one connection from the job to a new connection to `to`.
async fn join(inside: UnixStream, to: SocketAddr, counters: Arc<Counters>) {
    let outside = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::warn!(%to, %error, "egress: cannot connect");
            return;
        }
        Err(_) => {
            tracing::warn!(%to, "egress: connection timed out");
            return;
        }
    };
    counters.connections.fetch_add(1, Ordering::Relaxed);
    let _ = outside.set_nodelay(true);
    let (inside_read, inside_write) = inside.into_split();
    let (outside_read, outside_write) = outside.into_split();
    tokio::join!(
        pump(inside_read, outside_write, &counters.sent),
        pump(outside_read, inside_write, &counters.received),
    );
}

/// Copies `from` to `to` until either ends, counting the bytes, then closes `to`'s writing half.
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    count: &AtomicU64,
) {
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                if to.write_all(&buffer[..read]).await.is_err() {
                    break;
                }
                count.fetch_add(read as u64, Ordering::Relaxed);
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Gives back a connection's place when its threads are done, however they end.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Joins one connection from the program to the host's half: two copies, one per direction,
/// the second on a thread of its own. A thread that cannot be made (the job's process limit
/// counts threads) closes the connection.
fn join_inside(inside: std::net::TcpStream, outside: std::os::unix::net::UnixStream, slot: Slot) {
    let _ = inside.set_nodelay(true);
    let (Ok(inside_copy), Ok(outside_copy)) = (inside.try_clone(), outside.try_clone()) else {
        return;
    };
    let upstream = std::thread::Builder::new().spawn(move || {
        let _ = std::io::copy(&mut &inside_copy, &mut &outside_copy);
        let _ = outside_copy.shutdown(std::net::Shutdown::Write);
    });
    let Ok(upstream) = upstream else {
        return;
    };
    let _ = std::io::copy(&mut &outside, &mut &inside);
    let _ = inside.shutdown(std::net::Shutdown::Write);
    let _ = upstream.join();
    drop(slot);
}

/// The inside half, run by the supervisor on threads of its own: joins each connection on
/// `listener` (bound to the job's loopback before any confinement) to the Unix socket at
/// `socket`, at most [`MAX_CONNECTIONS`] at once. Returns at once; the threads end with the
/// supervisor. A connection past the limit, or one whose threads cannot be made, is closed.
///
/// # Errors
///
/// When the accepting thread cannot be made.
pub fn forward(listener: std::net::TcpListener, socket: PathBuf) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().spawn(move || {
        for connection in listener.incoming() {
            let Ok(inside) = connection else {
                // Out of descriptors or memory, say: wait rather than spin.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            if active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                continue;
            }
            let Ok(outside) = std::os::unix::net::UnixStream::connect(&socket) else {
                continue;
            };
            active.fetch_add(1, Ordering::AcqRel);
            let slot = Slot(active.clone());
            // On failure the closure, its streams and its slot are dropped: closed, given back.
            let _ = std::thread::Builder::new().spawn(move || join_inside(inside, outside, slot));
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_host_half_joins_the_socket_to_its_one_destination_and_counts() {
        let destination = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = destination.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let (mut stream, _) = destination.accept().await.unwrap();
            let mut line = [0_u8; 5];
            stream.read_exact(&mut line).await.unwrap();
            stream.write_all(b"pong!!").await.unwrap();
            line
        });
        let relay = HostRelay::start(to, None).unwrap();
        let mut inside = UnixStream::connect(relay.folder().join(SOCKET_NAME))
            .await
            .unwrap();
        inside.write_all(b"ping!").await.unwrap();
        let mut answer = Vec::new();
        inside.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"pong!!");
        assert_eq!(&echo.await.unwrap(), b"ping!");
        assert_eq!(
            relay.usage(),
            EgressUse {
                sent_bytes: 5,
                received_bytes: 6,
                connections: 1
            }
        );
    }

    #[tokio::test]
    async fn a_destination_that_refuses_closes_the_jobs_connection() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = closed.local_addr().unwrap();
        drop(closed);
        let relay = HostRelay::start(to, None).unwrap();
        let mut inside = UnixStream::connect(relay.folder().join(SOCKET_NAME))
            .await
            .unwrap();
        let mut answer = Vec::new();
        inside.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty());
        assert_eq!(relay.usage().connections, 0);
    }

    #[tokio::test]
    async fn dropping_the_relay_closes_its_socket() {
        let relay = HostRelay::start("127.0.0.1:9".parse().unwrap(), None).unwrap();
        let socket = relay.folder().join(SOCKET_NAME);
        drop(relay);
        assert!(UnixStream::connect(&socket).await.is_err());
    }
}
