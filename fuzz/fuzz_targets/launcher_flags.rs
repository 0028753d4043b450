//! `nsnet_fuzz::launcher_flags` (see crates/nsnet-fuzz), in a network namespace of its own.
#![no_main]
nsnet_fuzz_targets::fuzz_target_isolated!(nsnet_fuzz::launcher_flags);
