//! The backends, side by side: each a folder with the same shape, behind the facade's
//! dispatch.

pub(crate) mod etcd;
pub(crate) mod shm;
