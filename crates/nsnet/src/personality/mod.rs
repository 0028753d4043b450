//! The peers' personalities, chosen by `argv[0]`: each reproduces one program's command line,
//! output and exit codes over nsnet's own mechanisms (the crates), and holds nothing else.

pub mod cni;
pub mod pasta;
pub mod pesto;
pub mod rootlessctl;
pub mod rootlesskit;
pub mod slirp4netns;
