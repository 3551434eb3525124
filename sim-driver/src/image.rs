//! Kernel images as `cuModuleLoadData` receives them: how long they are,
//! whether they are well formed, which entries a PTX text declares, and
//! which host twin (a block-emulation library built by ringbridge-build from
//! the same `.cu`) runs each one.
//!
//! `cuModuleLoadData` gets a bare pointer: a fatbin and an ELF cubin say
//! their length in their headers, PTX text ends at its NUL. The twin is
//! found by the image's digest in the `.rbsim` index files ringbridge-build
//! writes beside the images it builds, so a stale build can never answer for
//! a newer image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A fatbin's magic number (`fatbinary.h`: `FATBIN_MAGIC`).
const FATBIN_MAGIC: u32 = 0xBA55_ED50;
/// Images longer than this are refused as malformed (no real kernel image
/// comes close; the bound keeps a garbage header from reading far).
const MAX_IMAGE: u64 = 1 << 30;

/// What kind of image a module was loaded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fatbin,
    Cubin,
    Ptx,
}

/// A copy of a loaded image's bytes and its kind.
pub struct Image {
    pub kind: Kind,
    pub bytes: Vec<u8>,
}

/// FNV-1a (64-bit) over `bytes` without their trailing NUL bytes: the
/// digest ringbridge-build writes into `.rbsim` files (`image_digest`).
pub fn digest(bytes: &[u8]) -> u64 {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes[..end].iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn u16_at(p: *const u8, off: usize) -> u16 {
    // SAFETY: the callers read only within the header they have checked the
    // magic of, which a valid image of that kind always has.
    unsafe { p.add(off).cast::<u16>().read_unaligned() }
}
fn u32_at(p: *const u8, off: usize) -> u32 {
    // SAFETY: as `u16_at`.
    unsafe { p.add(off).cast::<u32>().read_unaligned() }
}
fn u64_at(p: *const u8, off: usize) -> u64 {
    // SAFETY: as `u16_at`.
    unsafe { p.add(off).cast::<u64>().read_unaligned() }
}

/// Reads the image at `p`, or says why it is no image
/// (`CUDA_ERROR_INVALID_IMAGE` / `CUDA_ERROR_INVALID_PTX`).
///
/// # Safety
/// `p` points to a complete image (as `cuModuleLoadData` requires): a
/// fatbin or ELF file with its headers, or NUL-terminated text.
pub unsafe fn read(p: *const u8) -> Result<Image, crate::abi::CuResult> {
    use crate::abi::{INVALID_IMAGE, INVALID_PTX};
    let first = u32_at(p, 0);
    if first == FATBIN_MAGIC {
        let header = u64::from(u16_at(p, 6));
        let body = u64_at(p, 8);
        let len = header
            .checked_add(body)
            .filter(|&n| n > 16 && n < MAX_IMAGE);
        let len = len.ok_or(INVALID_IMAGE)? as usize;
        // SAFETY: the fatbin's header says it is `len` bytes long.
        let bytes = unsafe { std::slice::from_raw_parts(p, len) }.to_vec();
        return Ok(Image {
            kind: Kind::Fatbin,
            bytes,
        });
    }
    if first == u32::from_le_bytes(*b"\x7fELF") {
        if u16_at(p, 4) & 0xff != 2 {
            return Err(INVALID_IMAGE); // not ELFCLASS64
        }
        let sections = u64_at(p, 0x28) + u64::from(u16_at(p, 0x3a)) * u64::from(u16_at(p, 0x3c));
        let programs = u64_at(p, 0x20) + u64::from(u16_at(p, 0x36)) * u64::from(u16_at(p, 0x38));
        let len = sections.max(programs);
        if !(64..=MAX_IMAGE).contains(&len) {
            return Err(INVALID_IMAGE);
        }
        // SAFETY: the ELF headers say the file is `len` bytes long.
        let bytes = unsafe { std::slice::from_raw_parts(p, len as usize) }.to_vec();
        return Ok(Image {
            kind: Kind::Cubin,
            bytes,
        });
    }
    // SAFETY: anything else must be NUL-terminated PTX text.
    let text = unsafe { std::ffi::CStr::from_ptr(p.cast()) }.to_bytes();
    let Ok(s) = std::str::from_utf8(text) else {
        return Err(INVALID_IMAGE);
    };
    if !(s.contains(".version") && s.contains(".target")) {
        return Err(if s.trim().is_empty() || !s.is_ascii() {
            INVALID_IMAGE
        } else {
            INVALID_PTX
        });
    }
    Ok(Image {
        kind: Kind::Ptx,
        bytes: text.to_vec(),
    })
}

/// The entries a PTX text declares (`.entry name(`).
pub fn ptx_entries(text: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(text);
    let mut out = Vec::new();
    let mut rest = &*s;
    while let Some(i) = rest.find(".entry") {
        rest = &rest[i + ".entry".len()..];
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '$')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// The `.rbsim` index: image digest → host twin libraries. Several builds
/// of one crate (as a dependency, with its tests, an older build) can hold
/// the same image with twins built from different host code: the most
/// recently built twin is the one that answers.
#[derive(Default)]
pub struct Index {
    twins: HashMap<u64, Vec<PathBuf>>,
    scanned: Vec<PathBuf>,
}

/// The most recently modified of `paths` that exists.
fn newest(paths: &[PathBuf]) -> Option<PathBuf> {
    paths
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p.clone())
}

impl Index {
    /// The twin of the image with `digest`, scanning `dirs` (again) when it
    /// is not known yet: a test may have built more kernels since.
    pub fn twin(&mut self, digest: u64, dirs: &[PathBuf]) -> Option<PathBuf> {
        if let Some(p) = self.twins.get(&digest).and_then(|c| newest(c)) {
            return Some(p);
        }
        self.scanned.clear();
        for d in dirs {
            self.scan(d);
        }
        self.twins.get(&digest).and_then(|c| newest(c))
    }

    fn scan(&mut self, dir: &Path) {
        let mut files = Vec::new();
        collect(dir, &mut files);
        for sub in read_dirs(dir) {
            collect(&sub.join("out"), &mut files);
        }
        for sub in read_dirs(&dir.join("build")) {
            collect(&sub.join("out"), &mut files);
        }
        for f in files {
            if self.scanned.contains(&f) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&f) {
                self.parse(&text);
            }
            self.scanned.push(f);
        }
    }

    /// Reads one index file's lines (`image <digest hex> <library path>`).
    pub fn parse(&mut self, text: &str) {
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some("ringbridge-sim-index 1") {
            return;
        }
        for line in lines {
            let mut parts = line.splitn(3, ' ');
            if let (Some("image"), Some(hex), Some(path)) =
                (parts.next(), parts.next(), parts.next())
                && let Ok(d) = u64::from_str_radix(hex, 16)
            {
                let list = self.twins.entry(d).or_default();
                let path = PathBuf::from(path.trim());
                if !list.contains(&path) {
                    list.push(path);
                }
            }
        }
    }
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(it) = std::fs::read_dir(dir) {
        for e in it.filter_map(Result::ok) {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "rbsim") {
                out.push(p);
            }
        }
    }
}

/// Where to look for index files by default: the running executable's
/// folder and the two above it (cargo puts tests in `target/<profile>/deps`
/// and binaries in `target/<profile>`, build outputs in
/// `target/<profile>/build/*/out`).
pub fn default_dirs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent().map(Path::to_path_buf);
        for _ in 0..3 {
            let Some(d) = dir else { break };
            out.push(d.clone());
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_fnv1a_without_trailing_nuls() {
        assert_eq!(digest(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(digest(b"a\0\0\0"), digest(b"a"));
        assert_ne!(digest(b"a\0b"), digest(b"ab"));
    }

    #[test]
    fn images_are_recognised_or_refused() {
        let ptx = b"// x\n.version 7.0\n.target sm_75\n.visible .entry k1(\n) {}\n.entry k2() {}\0";
        // SAFETY: NUL-terminated.
        let img = unsafe { read(ptx.as_ptr()) }.expect("ptx");
        assert_eq!(img.kind, Kind::Ptx);
        assert_eq!(ptx_entries(&img.bytes), ["k1", "k2"]);
        assert_eq!(
            // SAFETY: NUL-terminated.
            unsafe { read(c"this is not PTX".as_ptr().cast()) }.err(),
            Some(crate::abi::INVALID_PTX)
        );
        let mut fat = [0u8; 64];
        fat[..4].copy_from_slice(&FATBIN_MAGIC.to_le_bytes());
        fat[6..8].copy_from_slice(&16u16.to_le_bytes());
        fat[8..16].copy_from_slice(&32u64.to_le_bytes());
        // SAFETY: 64 bytes, the header says 48.
        let img = unsafe { read(fat.as_ptr()) }.expect("fatbin");
        assert_eq!((img.kind, img.bytes.len()), (Kind::Fatbin, 48));
        fat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        // SAFETY: only the header is read.
        assert!(unsafe { read(fat.as_ptr()) }.is_err());
    }

    #[test]
    fn index_lines() {
        let dir = std::env::temp_dir().join(format!("rbsim-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (old, new) = (dir.join("old lib.so"), dir.join("new.so"));
        std::fs::write(&old, b"x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&new, b"y").unwrap();
        let mut ix = Index::default();
        ix.parse(&format!(
            "ringbridge-sim-index 1\nimage 00000000000000ff {}\nimage zz /b\n",
            new.display()
        ));
        ix.parse(&format!(
            "ringbridge-sim-index 1\nimage 00000000000000ff {}\n",
            old.display()
        ));
        assert_eq!(
            ix.twin(0xff, &[]),
            Some(new.clone()),
            "the newest build answers"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let mut other = Index::default();
        other.parse("something else\nimage 00000000000000ff /a\n");
        assert_eq!(other.twin(0xff, &[]), None);
    }
}
