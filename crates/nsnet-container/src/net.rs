//! The bridge layer, as the hooks call it (in the current netns: the instance's child netns).

use std::path::Path;

use crate::Error;
use crate::store::Attached;

pub fn attach(_network: &str, _id: &str, _netns: &Path) -> Result<Attached, Error> {
    Err(Error::Network("bridge layer not merged yet".into()))
}

pub fn detach(_network: &str, _id: &str, _netns: Option<&Path>) -> Result<(), Error> {
    Err(Error::Network("bridge layer not merged yet".into()))
}
