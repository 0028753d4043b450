//! `nsnet_fuzz::slirp4netns_api` (see crates/nsnet-fuzz), in a network namespace of its own.
#![no_main]
nsnet_fuzz_targets::fuzz_target_isolated!(nsnet_fuzz::slirp4netns_api);
