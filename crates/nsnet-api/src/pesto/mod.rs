//! pasta's forwarding configuration: the `-t/-u/-T/-U` spec grammar and rule tables
//! ([`spec`]), and the forwarding-table protocol that `pasta -c SOCKET` serves and `pesto`
//! speaks ([`proto`]: server over a small [`proto::Backend`] trait, and the client). Only
//! the grammar and the bytes live here; the listeners behind the tables are the caller's.

pub mod proto;
pub mod spec;

pub use proto::{Backend, Client, ClientError, PifTable, Server};
pub use spec::{Parser, Rule, SpecError, Table};
