//! nsnet's own subcommands, one file each; `cli.rs` holds the clap tree that reaches them.

pub mod check;
pub mod container;
pub mod network;
pub mod ns;
pub mod port;
pub mod run;
pub mod setup;
pub mod whoami;
