//! Local images: an OCI image layout directory, or a `docker save` / `podman save` archive
//! (Docker's `manifest.json` format, or an OCI layout in a tar), unpacked into a container's
//! rootfs. Pulling from registries is not nsnet's job.
//!
//! Layers are applied in order with the OCI whiteout rules: `.wh.NAME` deletes `NAME` from the
//! lower layers, `.wh..wh..opq` empties its directory of lower-layer content. Each layer is
//! read twice: first its whiteouts are applied (so an opaque marker that comes after files of
//! its own layer in the tar cannot delete them), then its files are extracted. Extraction goes
//! through `tar`'s `unpack_in`, which refuses paths that climb out of the rootfs. Ownership is
//! kept where the id maps allow it (rootless, subordinate ids); device nodes, which a user
//! namespace cannot create, are skipped.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde_json::Value;

use crate::Error;

/// The parts of an image's configuration a container starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
}

fn err(image: &Path, msg: impl Into<String>) -> Error {
    Error::Image {
        image: image.display().to_string(),
        msg: msg.into(),
    }
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the `config` object of an image configuration (OCI and Docker spell it alike).
fn parse_config(image: &Path, path: &Path) -> Result<ImageConfig, Error> {
    let text = std::fs::read(path).map_err(|e| err(image, format!("{}: {e}", path.display())))?;
    let v: Value = serde_json::from_slice(&text)
        .map_err(|e| err(image, format!("{}: {e}", path.display())))?;
    let c = v
        .get("config")
        .or_else(|| v.get("Config"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(ImageConfig {
        env: strings(&c, "Env"),
        entrypoint: strings(&c, "Entrypoint"),
        cmd: strings(&c, "Cmd"),
        working_dir: c
            .get("WorkingDir")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

/// A path inside an archive or layout, refusing anything that is absolute or climbs out.
fn inside(base: &Path, rel: &str, image: &Path) -> Result<PathBuf, Error> {
    let p = Path::new(rel);
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(err(image, format!("refusing the path {rel:?}")));
    }
    Ok(base.join(p))
}

fn blob(layout: &Path, d: &Descriptor, image: &Path) -> Result<PathBuf, Error> {
    let digest = d.digest();
    inside(
        layout,
        &format!("blobs/{}/{}", digest.algorithm(), digest.digest()),
        image,
    )
}

/// The one image of an OCI layout (following a nested index), as (config, layers).
fn oci_layout(layout: &Path, image: &Path) -> Result<(PathBuf, Vec<PathBuf>), Error> {
    let index = ImageIndex::from_file(layout.join("index.json"))
        .map_err(|e| err(image, format!("index.json: {e}")))?;
    let mut manifests: Vec<Descriptor> = index.manifests().clone();
    loop {
        let d = match manifests.as_slice() {
            [] => return Err(err(image, "the index lists no manifest")),
            [d] => d.clone(),
            many => {
                // A multi-platform index: take this machine's platform.
                let arch = match std::env::consts::ARCH {
                    "x86_64" => "amd64",
                    "aarch64" => "arm64",
                    a => a,
                };
                many.iter()
                    .find(|d| {
                        d.platform()
                            .as_ref()
                            .is_some_and(|p| p.architecture().to_string() == arch)
                    })
                    .cloned()
                    .ok_or_else(|| {
                        err(
                            image,
                            format!(
                                "the index lists {} manifests and none for {arch}",
                                many.len()
                            ),
                        )
                    })?
            }
        };
        let path = blob(layout, &d, image)?;
        let media = d.media_type().to_string();
        if media.contains("index") || media.contains("manifest.list") {
            let nested = ImageIndex::from_file(&path)
                .map_err(|e| err(image, format!("{}: {e}", path.display())))?;
            manifests = nested.manifests().clone();
            continue;
        }
        let m = ImageManifest::from_file(&path)
            .map_err(|e| err(image, format!("{}: {e}", path.display())))?;
        let config = blob(layout, m.config(), image)?;
        let layers = m
            .layers()
            .iter()
            .map(|l| blob(layout, l, image))
            .collect::<Result<_, _>>()?;
        return Ok((config, layers));
    }
}

/// `docker save`'s `manifest.json`: `[{"Config": …, "RepoTags": …, "Layers": […]}]`.
fn docker_archive(dir: &Path, image: &Path) -> Result<(PathBuf, Vec<PathBuf>), Error> {
    let text = std::fs::read(dir.join("manifest.json"))
        .map_err(|e| err(image, format!("manifest.json: {e}")))?;
    let v: Value =
        serde_json::from_slice(&text).map_err(|e| err(image, format!("manifest.json: {e}")))?;
    let entries = v.as_array().cloned().unwrap_or_default();
    let [m] = entries.as_slice() else {
        return Err(err(
            image,
            format!(
                "the archive holds {} images; save exactly one",
                entries.len()
            ),
        ));
    };
    let config = m
        .get("Config")
        .and_then(Value::as_str)
        .ok_or_else(|| err(image, "manifest.json has no Config"))?;
    let layers = m
        .get("Layers")
        .and_then(Value::as_array)
        .ok_or_else(|| err(image, "manifest.json has no Layers"))?
        .iter()
        .map(|l| {
            l.as_str()
                .ok_or_else(|| err(image, "a layer path is not a string"))
                .and_then(|l| inside(dir, l, image))
        })
        .collect::<Result<_, _>>()?;
    Ok((inside(dir, config, image)?, layers))
}

/// Opens a layer, uncompressing gzip (recognised by its magic bytes, not the media type, which
/// Docker archives do not carry).
fn open_layer(path: &Path, image: &Path) -> Result<Box<dyn Read>, Error> {
    let mut f = File::open(path).map_err(|e| err(image, format!("{}: {e}", path.display())))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).unwrap_or(0);
    f.rewind()
        .map_err(|e| err(image, format!("{}: {e}", path.display())))?;
    match &magic[..n] {
        [0x1f, 0x8b, ..] => Ok(Box::new(flate2::read::GzDecoder::new(BufReader::new(f)))),
        [0x28, 0xb5, 0x2f, 0xfd] => Err(err(
            image,
            "zstd-compressed layers are not supported; save the image uncompressed or with gzip",
        )),
        _ => Ok(Box::new(BufReader::new(f))),
    }
}

fn normal(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The directory `rel` inside `rootfs`, only if no component of it is a symlink (a whiteout
/// must not reach through a link out of the rootfs).
fn real_dir(rootfs: &Path, rel: &Path) -> Option<PathBuf> {
    let mut p = rootfs.to_path_buf();
    for c in rel.components() {
        p.push(c);
        if !std::fs::symlink_metadata(&p).ok()?.is_dir() {
            return None;
        }
    }
    Some(p)
}

/// Applies one layer on top of `rootfs`.
pub fn apply_layer(layer: &Path, rootfs: &Path, image: &Path) -> Result<(), Error> {
    let fail = |e: std::io::Error| err(image, format!("layer {}: {e}", layer.display()));
    // Pass 1: whiteouts against the lower layers.
    let mut a = tar::Archive::new(open_layer(layer, image)?);
    for entry in a.entries().map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let path = entry.path().map_err(fail)?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(hidden) = name.strip_prefix(".wh.") else {
            continue;
        };
        let Some(parent) = path.parent().and_then(normal) else {
            return Err(err(
                image,
                format!("refusing the whiteout {}", path.display()),
            ));
        };
        let Some(dir) = real_dir(rootfs, &parent) else {
            continue;
        };
        if hidden == ".wh..opq" {
            for e in std::fs::read_dir(&dir).map_err(fail)?.flatten() {
                remove_any(&e.path()).map_err(fail)?;
            }
        } else if !hidden.is_empty() && hidden != "." && hidden != ".." {
            remove_any(&dir.join(hidden)).map_err(fail)?;
        }
    }
    // Pass 2: the layer's own files.
    let own_ids = nix::unistd::geteuid().is_root();
    let mut a = tar::Archive::new(open_layer(layer, image)?);
    for entry in a.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        let path = entry.path().map_err(fail)?.into_owned();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".wh."))
        {
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_block_special() || kind.is_character_special() {
            continue;
        }
        // A file replacing a directory of a lower layer (or the reverse) replaces it whole.
        if let Some(rel) = normal(&path)
            && !rel.as_os_str().is_empty()
            && let Ok(m) = std::fs::symlink_metadata(rootfs.join(&rel))
            && (m.is_dir() != kind.is_dir() || (m.is_dir() && m.file_type().is_symlink()))
            && real_dir(rootfs, rel.parent().unwrap_or(Path::new(""))).is_some()
        {
            remove_any(&rootfs.join(&rel)).map_err(fail)?;
        }
        entry.set_preserve_permissions(true);
        entry.set_preserve_mtime(true);
        entry.set_unpack_xattrs(false);
        let (uid, gid) = (entry.header().uid(), entry.header().gid());
        if !entry.unpack_in(rootfs).map_err(fail)? {
            continue;
        }
        // Ownership where the user namespace's id map allows it; an id outside the map keeps
        // the file owned by the user (it stays usable, as root of the container).
        if own_ids
            && let (Ok(uid), Ok(gid), Some(rel)) = (uid, gid, normal(&path))
            && !rel.as_os_str().is_empty()
        {
            let _ = std::os::unix::fs::lchown(
                rootfs.join(rel),
                u32::try_from(uid).ok(),
                u32::try_from(gid).ok(),
            );
        }
    }
    Ok(())
}

/// Unpacks `image` (an OCI layout directory, or an archive) into `rootfs`, using `scratch` for
/// an archive's contents (removed afterwards). Returns the image's configuration.
pub fn unpack(image: &Path, rootfs: &Path, scratch: &Path) -> Result<ImageConfig, Error> {
    let meta = std::fs::metadata(image).map_err(|e| {
        err(
            image,
            format!("{e}; give an OCI image layout directory, a `docker save`/`podman save` archive, or --rootfs DIR"),
        )
    })?;
    let result = (|| {
        let dir = if meta.is_dir() {
            image.to_path_buf()
        } else {
            std::fs::create_dir_all(scratch).map_err(|e| err(image, e.to_string()))?;
            let f = File::open(image).map_err(|e| err(image, e.to_string()))?;
            tar::Archive::new(BufReader::new(f))
                .unpack(scratch)
                .map_err(|e| err(image, format!("not a readable tar archive: {e}")))?;
            scratch.to_path_buf()
        };
        let (config, layers) = if dir.join("index.json").exists() {
            oci_layout(&dir, image)?
        } else if dir.join("manifest.json").exists() {
            docker_archive(&dir, image)?
        } else {
            return Err(err(
                image,
                "neither an OCI image layout (index.json) nor a docker archive (manifest.json); for a plain directory use --rootfs",
            ));
        };
        std::fs::create_dir_all(rootfs).map_err(|e| err(image, e.to_string()))?;
        for l in &layers {
            apply_layer(l, rootfs, image)?;
        }
        parse_config(image, &config)
    })();
    if !meta.is_dir() {
        let _ = std::fs::remove_dir_all(scratch);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(dir: &Path, name: &str, files: &[(&str, Option<&str>)], gzip: bool) -> PathBuf {
        let path = dir.join(name);
        let f = File::create(&path).unwrap();
        let w: Box<dyn std::io::Write> = if gzip {
            Box::new(flate2::write::GzEncoder::new(
                f,
                flate2::Compression::fast(),
            ))
        } else {
            Box::new(f)
        };
        let mut b = tar::Builder::new(w);
        for (p, content) in files {
            let mut h = tar::Header::new_gnu();
            match content {
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(c.len() as u64);
                    h.set_mode(0o644);
                    // Raw name bytes: the builder itself refuses `..`, a hostile archive
                    // does not.
                    h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
                    h.set_cksum();
                    b.append(&h, c.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, p, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap().flush().unwrap();
        path
    }

    #[test]
    fn whiteouts_and_opaque_dirs() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let l1 = layer(
            t.path(),
            "l1",
            &[
                ("etc/", None),
                ("etc/a", Some("1")),
                ("etc/b", Some("1")),
                ("opt/", None),
                ("opt/old", Some("1")),
                ("x", Some("file")),
            ],
            false,
        );
        // The opaque marker after a file of its own layer must not delete that file.
        let l2 = layer(
            t.path(),
            "l2",
            &[
                ("etc/.wh.a", Some("")),
                ("opt/new", Some("2")),
                ("opt/.wh..wh..opq", Some("")),
                ("x/", None),
                ("x/inner", Some("dir now")),
                ("../escape", Some("no")),
            ],
            true,
        );
        let img = t.path();
        apply_layer(&l1, &root, img).unwrap();
        let e = apply_layer(&l2, &root, img);
        // `unpack_in` skips the climbing path rather than failing the layer.
        e.unwrap();
        assert!(!root.join("etc/a").exists());
        assert_eq!(std::fs::read_to_string(root.join("etc/b")).unwrap(), "1");
        assert!(!root.join("opt/old").exists());
        assert_eq!(std::fs::read_to_string(root.join("opt/new")).unwrap(), "2");
        assert_eq!(
            std::fs::read_to_string(root.join("x/inner")).unwrap(),
            "dir now"
        );
        assert!(!t.path().join("escape").exists());
    }

    #[test]
    fn whiteouts_do_not_climb_out() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(t.path().join("victim"), "keep").unwrap();
        let l = layer(t.path(), "l", &[("../.wh.victim", Some(""))], false);
        assert!(apply_layer(&l, &root, t.path()).is_err());
        assert!(t.path().join("victim").exists());
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), "keep").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        let l = layer(t.path(), "l2", &[("link/.wh.victim", Some(""))], false);
        apply_layer(&l, &root, t.path()).unwrap();
        assert!(outside.path().join("victim").exists());
    }

    #[test]
    fn bad_images_say_what_they_are() {
        let t = tempfile::tempdir().unwrap();
        let e = unpack(
            &t.path().join("nope"),
            &t.path().join("r"),
            &t.path().join("s"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--rootfs"), "{e}");
        let e = unpack(t.path(), &t.path().join("r"), &t.path().join("s"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("index.json"), "{e}");
    }
}
