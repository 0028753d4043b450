//! argv[0] personalities that are front ends over the library crates (the older ones still
//! live beside `main.rs` and move here later).

pub mod pasta;
mod pasta_ports;
pub mod pesto;
