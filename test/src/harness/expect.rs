//! Assertions on failing transactions, for tests.

use alloy::{
    primitives::U256,
    sol_types::{PanicKind, SolError},
};

use super::TxError;

/// Test helpers on the result of a call or transaction that is expected to revert.
///
/// Every method panics (with the caller's location) when the result is not the expected
/// failure, which is what a test wants.
pub trait ExpectRevert {
    /// The custom error `E` the call reverted with.
    ///
    /// # Panics
    ///
    /// If the call succeeded, or failed any other way.
    #[track_caller]
    fn expect_revert<E: SolError>(self) -> E;

    /// The message of the `Error(string)` the call reverted with (`require(.., "message")`).
    ///
    /// # Panics
    ///
    /// If the call succeeded, or failed any other way.
    #[track_caller]
    fn expect_revert_reason(self) -> String;

    /// The code of the `Panic(uint256)` the call reverted with.
    ///
    /// # Panics
    ///
    /// If the call succeeded, or failed any other way.
    #[track_caller]
    fn expect_panic(self) -> U256;

    /// Checks the call reverted with a `Panic` of the given kind.
    ///
    /// # Panics
    ///
    /// If the call succeeded, or failed any other way.
    #[track_caller]
    fn expect_panic_kind(self, kind: PanicKind);

    /// The error of a call that is expected to fail in any way.
    ///
    /// # Panics
    ///
    /// If the call succeeded.
    #[track_caller]
    fn expect_failure(self) -> TxError;
}

impl<T> ExpectRevert for Result<T, TxError> {
    #[track_caller]
    fn expect_revert<E: SolError>(self) -> E {
        let err = self.expect_failure();
        match err.decode_error::<E>() {
            Some(decoded) => decoded,
            None => panic!("expected a revert with {}, got: {err}", E::SIGNATURE),
        }
    }

    #[track_caller]
    fn expect_revert_reason(self) -> String {
        let err = self.expect_failure();
        match err.revert().and_then(|revert| revert.reason()) {
            Some(reason) => reason,
            None => panic!("expected a revert with Error(string), got: {err}"),
        }
    }

    #[track_caller]
    fn expect_panic(self) -> U256 {
        let err = self.expect_failure();
        match err.revert().and_then(|revert| revert.panic_code()) {
            Some(code) => code,
            None => panic!("expected a Panic(uint256), got: {err}"),
        }
    }

    #[track_caller]
    fn expect_panic_kind(self, kind: PanicKind) {
        let code = self.expect_panic();
        assert_eq!(
            code,
            U256::from(kind as u32),
            "expected a panic of kind {kind:?}"
        );
    }

    #[track_caller]
    fn expect_failure(self) -> TxError {
        match self {
            Ok(_) => panic!("expected the call to fail, but it succeeded"),
            Err(err) => err,
        }
    }
}
