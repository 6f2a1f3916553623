//! The etcd backend: the engine of `ccs_etcd` behind the facade when the `etcd` feature is on,
//! an uninhabited stand-in that refuses `etcd://` locations when it is off.

#[cfg(not(feature = "etcd"))]
mod disabled;
#[cfg(feature = "etcd")]
mod enabled;

#[cfg(not(feature = "etcd"))]
pub(crate) use disabled::*;
#[cfg(feature = "etcd")]
pub(crate) use enabled::*;
