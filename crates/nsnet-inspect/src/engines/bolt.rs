//! A read-only reader of bbolt files (go.etcd.io/bbolt, BoltDB's format), for Podman 4's
//! `libpod/bolt_state.db`: Podman 4.3 keeps its containers' names, images, published ports
//! and netns paths there and nowhere else on disk (the OCI `config.json` it writes carries
//! no name, and containers/storage's `containers.json` no ports).
//!
//! The format, as bbolt's `page.go`, `node.go` and `db.go` define it (little-endian):
//! - page header (16 bytes): `id u64, flags u16, count u16, overflow u32`; a page spans
//!   `overflow + 1` pages of the file's page size. Flags: branch 0x01, leaf 0x02, meta 0x04.
//! - pages 0 and 1 are meta pages: `magic u32 (0xED0CDAED), version u32 (2), pageSize u32,
//!   flags u32, root bucket {root pgid u64, sequence u64}, freelist u64, pgid u64, txid u64,
//!   checksum u64` (FNV-1a 64 over the fields before it). The valid meta with the higher
//!   txid is the last committed transaction: readers never see a half-written one, because
//!   bbolt writes data pages before flipping a meta page.
//! - branch elements (16 bytes each): `pos u32, ksize u32, pgid u64` (pos from the element).
//! - leaf elements (16 bytes each): `flags u32, pos u32, ksize u32, vsize u32`; flag 0x01 is
//!   a nested bucket whose value is `{root pgid u64, sequence u64}`, followed, when root is
//!   0, by the bucket's own leaf page inline.
//!
//! Written here rather than taken from a crate: read-only access to the committed state is
//! these few hundred lines, where a Rust port of bbolt would bring its whole read-write
//! engine (and its own idea of locking) into an inspector that must never write.
//!
//! Only reading is done: the file is read whole into memory once (bbolt writes in place,
//! but a torn read shows up as a bad checksum or a bad page, which is reported, not guessed
//! around).

use std::collections::BTreeMap;

const MAGIC: u32 = 0xED0C_DAED;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BoltError {
    #[error("not a bbolt file (no valid meta page)")]
    NoMeta,
    #[error("damaged bbolt file: {0}")]
    Damaged(String),
}

/// A bucket's contents: its keys with plain values, and its nested buckets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub values: BTreeMap<Vec<u8>, Vec<u8>>,
    pub buckets: BTreeMap<Vec<u8>, Bucket>,
}

impl Bucket {
    pub fn bucket(&self, name: &str) -> Option<&Bucket> {
        self.buckets.get(name.as_bytes())
    }

    pub fn value(&self, name: &str) -> Option<&[u8]> {
        self.values.get(name.as_bytes()).map(Vec::as_slice)
    }
}

fn u16_at(b: &[u8], o: usize) -> Result<u16, BoltError> {
    b.get(o..o + 2)
        .map(|s| u16::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| BoltError::Damaged(format!("read past the end at {o}")))
}

fn u32_at(b: &[u8], o: usize) -> Result<u32, BoltError> {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| BoltError::Damaged(format!("read past the end at {o}")))
}

fn u64_at(b: &[u8], o: usize) -> Result<u64, BoltError> {
    b.get(o..o + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| BoltError::Damaged(format!("read past the end at {o}")))
}

fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// (txid, root pgid, page size) of a meta page at `off`, if it is valid.
fn meta(file: &[u8], off: usize) -> Option<(u64, u64, usize)> {
    let m = off + 16;
    let body = file.get(m..m + 64)?;
    if u32::from_le_bytes(body[0..4].try_into().ok()?) != MAGIC {
        return None;
    }
    if u32::from_le_bytes(body[4..8].try_into().ok()?) != 2 {
        return None;
    }
    let checksum = u64::from_le_bytes(body[56..64].try_into().ok()?);
    if fnv1a64(&body[..56]) != checksum {
        return None;
    }
    let page_size = u32::from_le_bytes(body[8..12].try_into().ok()?) as usize;
    let root = u64::from_le_bytes(body[16..24].try_into().ok()?);
    let txid = u64::from_le_bytes(body[48..56].try_into().ok()?);
    Some((txid, root, page_size))
}

/// The whole database as nested buckets (Podman's is a few hundred KiB at most).
pub fn read(file: &[u8]) -> Result<Bucket, BoltError> {
    let first = meta(file, 0);
    // The second meta page sits one page further; the page size comes from the first valid
    // one (both carry it), else the usual 4096.
    let ps = first.map(|m| m.2).unwrap_or(4096);
    let second = meta(file, ps);
    let (_, root, ps) = match (first, second) {
        (Some(a), Some(b)) => {
            if a.0 >= b.0 {
                a
            } else {
                b
            }
        }
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Err(BoltError::NoMeta),
    };
    if ps < 512 {
        return Err(BoltError::Damaged(format!("page size {ps}")));
    }
    let mut out = Bucket::default();
    let r = Reader { file, ps };
    r.page(&mut out, r.at(root)?, 0)?;
    Ok(out)
}

struct Reader<'a> {
    file: &'a [u8],
    ps: usize,
}

impl<'a> Reader<'a> {
    /// The bytes of page `id` (with its overflow pages).
    fn at(&self, id: u64) -> Result<&'a [u8], BoltError> {
        let off = (id as usize)
            .checked_mul(self.ps)
            .ok_or_else(|| BoltError::Damaged(format!("page {id}")))?;
        let overflow = u32_at(self.file, off + 12)? as usize;
        let len = (overflow + 1) * self.ps;
        self.file
            .get(off..off + len)
            .ok_or_else(|| BoltError::Damaged(format!("page {id} lies past the end of the file")))
    }

    /// Adds the contents of the page `p` (a branch or leaf page, or an inline bucket's
    /// page) to `into`. `depth` bounds a damaged file's cycles.
    fn page(&self, into: &mut Bucket, p: &'a [u8], depth: u32) -> Result<(), BoltError> {
        if depth > 64 {
            return Err(BoltError::Damaged("page tree deeper than 64".into()));
        }
        let flags = u16_at(p, 8)?;
        let count = u16_at(p, 10)? as usize;
        for i in 0..count {
            let e = 16 + i * 16;
            if flags & BRANCH != 0 {
                let child = u64_at(p, e + 8)?;
                self.page(into, self.at(child)?, depth + 1)?;
            } else if flags & LEAF != 0 {
                let eflags = u32_at(p, e)?;
                let pos = u32_at(p, e + 4)? as usize;
                let ksize = u32_at(p, e + 8)? as usize;
                let vsize = u32_at(p, e + 12)? as usize;
                let k0 = e + pos;
                let key = p
                    .get(k0..k0 + ksize)
                    .ok_or_else(|| BoltError::Damaged("a key past its page".into()))?;
                let value = p
                    .get(k0 + ksize..k0 + ksize + vsize)
                    .ok_or_else(|| BoltError::Damaged("a value past its page".into()))?;
                if eflags & BUCKET_LEAF != 0 {
                    let root = u64_at(value, 0)?;
                    let mut b = Bucket::default();
                    if root == 0 {
                        // An inline bucket: its page follows the 16-byte bucket header.
                        let inline = value
                            .get(16..)
                            .ok_or_else(|| BoltError::Damaged("an empty inline bucket".into()))?;
                        if inline.len() >= 16 {
                            self.page(&mut b, inline, depth + 1)?;
                        }
                    } else {
                        self.page(&mut b, self.at(root)?, depth + 1)?;
                    }
                    into.buckets.insert(key.to_vec(), b);
                } else {
                    into.values.insert(key.to_vec(), value.to_vec());
                }
            } else {
                return Err(BoltError::Damaged(format!(
                    "page with flags {flags:#x} inside the tree"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a bbolt file the way bbolt lays one out: two meta pages (the second with the
    /// higher txid), a freelist page, and the given root leaf page at page 3, then `extra`
    /// pages. Every page is `ps` bytes.
    pub fn file(ps: usize, txids: [u64; 2], root: u64, pages: &[Vec<u8>]) -> Vec<u8> {
        let mut f = vec![0u8; ps * (3 + pages.len())];
        for (i, tx) in txids.into_iter().enumerate() {
            let o = i * ps;
            f[o..o + 8].copy_from_slice(&(i as u64).to_le_bytes());
            f[o + 8..o + 10].copy_from_slice(&0x04u16.to_le_bytes());
            let m = o + 16;
            let mut body = Vec::new();
            body.extend(MAGIC.to_le_bytes());
            body.extend(2u32.to_le_bytes());
            body.extend((ps as u32).to_le_bytes());
            body.extend(0u32.to_le_bytes());
            body.extend(root.to_le_bytes());
            body.extend(0u64.to_le_bytes());
            body.extend(2u64.to_le_bytes());
            body.extend(((3 + pages.len()) as u64).to_le_bytes());
            body.extend(tx.to_le_bytes());
            let ck = fnv1a64(&body);
            body.extend(ck.to_le_bytes());
            f[m..m + 64].copy_from_slice(&body);
        }
        for (i, p) in pages.iter().enumerate() {
            let o = (3 + i) * ps;
            f[o..o + p.len()].copy_from_slice(p);
        }
        f
    }

    /// A leaf page: `(flags, key, value)` elements laid out after the element headers.
    pub fn leaf(id: u64, items: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend(id.to_le_bytes());
        p.extend(LEAF.to_le_bytes());
        p.extend((items.len() as u16).to_le_bytes());
        p.extend(0u32.to_le_bytes());
        let mut data = Vec::new();
        let hdr_end = 16 + items.len() * 16;
        for (i, (flags, k, v)) in items.iter().enumerate() {
            let elem = 16 + i * 16;
            let pos = hdr_end + data.len() - elem;
            p.extend(flags.to_le_bytes());
            p.extend((pos as u32).to_le_bytes());
            p.extend((k.len() as u32).to_le_bytes());
            p.extend((v.len() as u32).to_le_bytes());
            data.extend_from_slice(k);
            data.extend_from_slice(v);
        }
        p.extend(data);
        p
    }

    fn branch(id: u64, children: &[(&[u8], u64)]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend(id.to_le_bytes());
        p.extend(BRANCH.to_le_bytes());
        p.extend((children.len() as u16).to_le_bytes());
        p.extend(0u32.to_le_bytes());
        let mut data = Vec::new();
        let hdr_end = 16 + children.len() * 16;
        for (i, (k, pg)) in children.iter().enumerate() {
            let pos = hdr_end + data.len() - (16 + i * 16);
            p.extend((pos as u32).to_le_bytes());
            p.extend((k.len() as u32).to_le_bytes());
            p.extend(pg.to_le_bytes());
            data.extend_from_slice(k);
        }
        p.extend(data);
        p
    }

    /// An inline bucket's value: header with root 0, then its leaf page.
    pub fn inline(items: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
        let mut v = vec![0u8; 16];
        v.extend(leaf(0, items));
        v
    }

    #[test]
    fn reads_nested_inline_and_paged_buckets_through_a_branch() {
        let ps = 512;
        let ctr = inline(&[
            (0, b"config", b"{\"name\":\"web\"}"),
            (0, b"netns", b"/run/x"),
        ]);
        let mut paged_hdr = Vec::new();
        paged_hdr.extend(5u64.to_le_bytes());
        paged_hdr.extend(0u64.to_le_bytes());
        let pages = vec![
            // 3: the root, a branch over two leaves
            branch(3, &[(b"a", 4), (b"m", 6)]),
            // 4: a leaf with a plain value and the inline bucket "ctr"
            leaf(4, &[(0, b"a", b"1"), (BUCKET_LEAF, b"ctr", &ctr)]),
            // 5: the paged bucket's leaf
            leaf(5, &[(0, b"k", b"v")]),
            // 6: a leaf with the paged bucket
            leaf(6, &[(BUCKET_LEAF, b"paged", &paged_hdr)]),
        ];
        let f = file(ps, [7, 8], 3, &pages);
        let root = read(&f).unwrap();
        assert_eq!(root.value("a"), Some(&b"1"[..]));
        let c = root.bucket("ctr").unwrap();
        assert_eq!(c.value("netns"), Some(&b"/run/x"[..]));
        assert_eq!(c.value("config"), Some(&b"{\"name\":\"web\"}"[..]));
        assert_eq!(root.bucket("paged").unwrap().value("k"), Some(&b"v"[..]));
    }

    #[test]
    fn the_newer_valid_meta_wins_and_a_bad_checksum_is_skipped() {
        // 4096: with meta 0 damaged the second is looked for one usual page further.
        let ps = 4096;
        let pages = vec![leaf(3, &[(0, b"old", b"")]), leaf(4, &[(0, b"new", b"")])];
        // Meta 0 points at page 3 (txid 9), meta 1 at page 4 (txid 8): 9 wins.
        let mut f = file(ps, [9, 8], 3, &pages);
        f[ps + 16 + 16..ps + 16 + 24].copy_from_slice(&4u64.to_le_bytes());
        // Meta 1's checksum no longer matches its root: it is not valid.
        assert!(read(&f).unwrap().values.contains_key(&b"old"[..]));
        // Make meta 0 invalid: the other one is used, even with the bad checksum fixed.
        let body: Vec<u8> = f[ps + 16..ps + 16 + 56].to_vec();
        f[ps + 16 + 56..ps + 16 + 64].copy_from_slice(&fnv1a64(&body).to_le_bytes());
        f[16] ^= 0xff;
        assert!(read(&f).unwrap().values.contains_key(&b"new"[..]));
        f[ps + 16] ^= 0xff;
        assert_eq!(read(&f), Err(BoltError::NoMeta));
    }

    #[test]
    fn a_page_past_the_end_is_damage_not_a_panic() {
        let ps = 512;
        let mut hdr = Vec::new();
        hdr.extend(99u64.to_le_bytes());
        hdr.extend(0u64.to_le_bytes());
        let f = file(ps, [1, 0], 3, &[leaf(3, &[(BUCKET_LEAF, b"b", &hdr)])]);
        assert!(
            matches!(read(&f), Err(BoltError::Damaged(_))),
            "{:?}",
            read(&f)
        );
    }
}
