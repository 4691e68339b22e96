//! Every scenario runs on both proxies: the [`Proxy`] parameter a scenario takes, [`PerProxy`]
//! (one of something per proxy kind, such as the mesh the tests of a file share), and
//! [`both!`](crate::both), which turns scenarios written once into `#[tokio::test]`s named
//! `envoy::<scenario>` and `mast::<scenario>`.
//!
//! ```text
//! async fn seed_splits(proxy: Proxy) {
//!     let mesh = shared(&MESH, proxy).await;
//!     // …
//! }
//!
//! mast_e2e::both! {
//!     seed_splits,
//!     live_change(multi_thread),
//!     cors(mast_ignore = "mast-proxy: CORS filter missing"),
//! }
//! ```
//!
//! `cargo test -p mast-e2e envoy::` runs the Envoy side only, `mast::` the mast-proxy side.
//! Options, in any order: `multi_thread` (a runtime with two worker threads) and
//! `mast_ignore = "reason"` (the mast-proxy side is `#[ignore]`d with that reason; the Envoy
//! side still runs).

use tokio::sync::OnceCell;

/// Which proxy a scenario runs against.
pub use mast_test_support::ProxyKind as Proxy;

/// One `T` per proxy kind, each made by the first that asks for it (a mesh shared by the
/// tests of a file, or the servers a shared mesh was given).
#[derive(Debug)]
pub struct PerProxy<T> {
    envoy: OnceCell<T>,
    mast: OnceCell<T>,
}

impl<T> PerProxy<T> {
    /// Nothing made yet (usable in a `static`).
    pub const fn const_new() -> Self {
        Self {
            envoy: OnceCell::const_new(),
            mast: OnceCell::const_new(),
        }
    }

    /// The cell of `proxy`.
    pub fn cell(&self, proxy: Proxy) -> &OnceCell<T> {
        match proxy {
            Proxy::Envoy => &self.envoy,
            Proxy::Mast => &self.mast,
        }
    }

    /// The value of `proxy`, made by `make` if it is the first to ask.
    pub async fn get_or_init<F, Fut>(&self, proxy: Proxy, make: F) -> &T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.cell(proxy).get_or_init(make).await
    }
}

impl<T> Default for PerProxy<T> {
    fn default() -> Self {
        Self::const_new()
    }
}

/// Generates, for each scenario `name` (an `async fn name(proxy: Proxy)` in the same file),
/// the tests `envoy::name` and `mast::name`; see the [module docs](crate::sides) for the
/// options. Invoke it once per file, listing every scenario.
#[macro_export]
macro_rules! both {
    ($($name:ident $(($($opt:tt)*))?),+ $(,)?) => {
        /// The scenarios of this file, against real Envoy bootstrapped by `mast-agent`.
        mod envoy {
            $($crate::__both_test!(@parse Envoy $name [] [] $($($opt)*)?);)+
        }
        /// The scenarios of this file, against mast-proxy.
        mod mast {
            $($crate::__both_test!(@parse Mast $name [] [] $($($opt)*)?);)+
        }
    };
}

/// One side's test of [`both!`](crate::both): parses the options, then writes the test.
#[doc(hidden)]
#[macro_export]
macro_rules! __both_test {
    (@parse $side:ident $name:ident [$($flavor:tt)*] [$($ignore:tt)*]
        multi_thread $(, $($rest:tt)*)?) => {
        $crate::__both_test!(@parse $side $name [flavor = "multi_thread", worker_threads = 2]
            [$($ignore)*] $($($rest)*)?);
    };
    (@parse Mast $name:ident [$($flavor:tt)*] [$($ignore:tt)*]
        mast_ignore = $reason:literal $(, $($rest:tt)*)?) => {
        $crate::__both_test!(@parse Mast $name [$($flavor)*] [$reason] $($($rest)*)?);
    };
    (@parse Envoy $name:ident [$($flavor:tt)*] [$($ignore:tt)*]
        mast_ignore = $reason:literal $(, $($rest:tt)*)?) => {
        $crate::__both_test!(@parse Envoy $name [$($flavor)*] [$($ignore)*] $($($rest)*)?);
    };
    (@parse $side:ident $name:ident [$($flavor:tt)*] []) => {
        #[tokio::test($($flavor)*)]
        async fn $name() {
            super::$name($crate::Proxy::$side).await
        }
    };
    (@parse $side:ident $name:ident [$($flavor:tt)*] [$reason:literal]) => {
        #[tokio::test($($flavor)*)]
        #[ignore = $reason]
        async fn $name() {
            super::$name($crate::Proxy::$side).await
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    static CELLS: PerProxy<&'static str> = PerProxy::const_new();

    #[tokio::test]
    async fn each_proxy_gets_its_own_value() {
        let envoy = CELLS.get_or_init(Proxy::Envoy, || async { "e" }).await;
        let again = CELLS.get_or_init(Proxy::Envoy, || async { "x" }).await;
        let mast = CELLS.get_or_init(Proxy::Mast, || async { "m" }).await;
        assert_eq!((*envoy, *again, *mast), ("e", "e", "m"));
    }

    /// Scenarios as a test file writes them; the macro's output is checked below.
    async fn plain(proxy: Proxy) {
        assert!(Proxy::ALL.contains(&proxy));
    }

    async fn threaded(proxy: Proxy) {
        assert_eq!(
            tokio::runtime::Handle::current().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread,
            "{proxy}"
        );
    }

    async fn not_on_mast(proxy: Proxy) {
        assert_eq!(proxy, Proxy::Envoy, "the mast side is ignored");
    }

    crate::both! {
        plain,
        threaded(multi_thread),
        not_on_mast(mast_ignore = "mast-proxy: a reason", multi_thread),
    }
}
