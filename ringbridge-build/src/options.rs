//! The two environment switches every kernel build reads:
//! `RINGBRIDGE_CUDA_ARCHS` (which GPUs the fatbin targets) and
//! `RINGBRIDGE_KERNEL_DEFINES` (macros for the device and host builds alike).

/// Default targets: SASS for Hopper, PTX for Ampere and newer.
pub const DEFAULT_ARCHS: &[&str] = &["sm_90", "compute_80"];

/// `RINGBRIDGE_CUDA_ARCHS` when set and not blank, else `fallback`; every
/// entry validated (`sm_XY` or `compute_XY`, with an optional `a` or `f`
/// suffix as in `sm_90a`).
pub(crate) fn archs(fallback: &[String]) -> Result<Vec<String>, String> {
    let list: Vec<String> = match std::env::var("RINGBRIDGE_CUDA_ARCHS") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
        _ => fallback.to_vec(),
    };
    for a in &list {
        check_arch(a)?;
    }
    Ok(list)
}

/// Whether `a` is `sm_XY` / `compute_XY` (optionally suffixed `a` or `f`).
pub(crate) fn check_arch(a: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "bad CUDA architecture `{a}` (expected sm_XY or compute_XY, e.g. sm_90 or compute_80)"
        )
    };
    let num = a
        .strip_prefix("sm_")
        .or_else(|| a.strip_prefix("compute_"))
        .ok_or_else(bad)?;
    let digits = num.strip_suffix(['a', 'f']).unwrap_or(num);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(())
}

/// `sm_90` -> `arch=compute_90,code=sm_90`; `compute_80` -> `arch=compute_80,code=compute_80`.
pub(crate) fn gencode(a: &str) -> String {
    match a.strip_prefix("sm_") {
        Some(n) => format!("arch=compute_{n},code=sm_{n}"),
        None => format!("arch={a},code={a}"),
    }
}

/// The PTX file targets the highest listed architecture.
pub(crate) fn ptx_arch(archs: &[String]) -> String {
    let num = |a: &String| -> u32 {
        let n = a.trim_start_matches("sm_").trim_start_matches("compute_");
        n.trim_end_matches(|c: char| c.is_ascii_lowercase())
            .parse()
            .unwrap_or(0)
    };
    let max = archs.iter().map(num).max().unwrap_or(90);
    format!("compute_{max}")
}

/// `RINGBRIDGE_KERNEL_DEFINES` (comma list of `NAME` or `NAME=VALUE`) as
/// (name, value) pairs. A malformed entry is an error: a switch silently
/// ignored would mislabel a measurement.
pub(crate) fn env_defines() -> Result<Vec<(String, Option<String>)>, String> {
    let Ok(list) = std::env::var("RINGBRIDGE_KERNEL_DEFINES") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (item, None),
        };
        check_define(name, value.as_deref()).map_err(|_| {
            format!(
                "bad RINGBRIDGE_KERNEL_DEFINES entry `{item}` \
                 (expected a comma list of NAME or NAME=VALUE, e.g. RB_LANE_LAZY_TAIL=0)"
            )
        })?;
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// A macro name is a C identifier; a value is a plain token (letters,
/// digits, `_`), so it reads the same on nvcc's and the C++ compiler's
/// command lines.
pub(crate) fn check_define(name: &str, value: Option<&str>) -> Result<(), String> {
    let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let plain_value = value
        .is_none_or(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if ident && plain_value {
        Ok(())
    } else {
        Err(format!("bad define `{name}` = {value:?}"))
    }
}
