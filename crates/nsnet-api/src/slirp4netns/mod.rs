//! slirp4netns's JSON API on its `--api-socket` (slirp4netns 1.2.0's `api.c`): the server's
//! protocol over a small [`proto::Backend`] trait, and the [`client`] RootlessKit's
//! slirp4netns port driver uses. Only the protocol lives here; the forwards themselves are
//! the network's (nsnet's stack, or a real slirp4netns on the other end of the socket).

pub mod client;
pub mod proto;

pub use client::{Client, ClientError};
pub use proto::{Api, Backend, BindError, Socket};
