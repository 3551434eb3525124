//! A kernel's log line (`rb_log`): decoded from its call slot and
//! formatted on the host.
//!
//! The payload (written by `rb_log_write`, `kernels/ringbridge/call.h`):
//! `args: u32`, `text_len: u32`, one kind byte per number (8 bytes), the
//! numbers as 8-byte words, then the text. Each `{}` in the text takes the
//! next number; numbers left over are appended.

use std::fmt::Write;

/// The `log` level of a line's level number (`RB_LOG_*`: 1 error .. 5
/// trace; anything else is info).
pub(crate) fn level(n: u32) -> log::Level {
    match n {
        1 => log::Level::Error,
        2 => log::Level::Warn,
        4 => log::Level::Debug,
        5 => log::Level::Trace,
        _ => log::Level::Info,
    }
}

fn number(kind: u8, bits: u64) -> String {
    match kind {
        2 => (bits as i64).to_string(),
        3 => f64::from_bits(bits).to_string(),
        4 => (bits != 0).to_string(),
        _ => bits.to_string(),
    }
}

/// The line's text with its numbers in place; a payload too short for
/// what it claims keeps what it has.
pub(crate) fn format(payload: &[u8]) -> String {
    let word = |at: usize| -> Option<u64> {
        payload
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let Some(head) = word(0) else {
        return String::from("(empty log line)");
    };
    let args = ((head & 0xffff_ffff) as usize).min(8);
    let text_len = (head >> 32) as usize;
    let kinds = payload.get(8..16).unwrap_or(&[]);
    let numbers: Vec<String> = (0..args)
        .filter_map(|i| Some(number(*kinds.get(i)?, word(16 + 8 * i)?)))
        .collect();
    let start = 16 + 8 * args;
    let text = payload
        .get(start..(start + text_len).min(payload.len()))
        .unwrap_or(&[]);
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len() + 16 * numbers.len());
    let mut next = numbers.iter();
    let mut rest = text.as_ref();
    while let Some(at) = rest.find("{}") {
        out.push_str(&rest[..at]);
        match next.next() {
            Some(n) => out.push_str(n),
            None => out.push_str("{}"),
        }
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    for n in next {
        let _ = write!(out, " {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, numbers: &[(u8, u64)]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&(numbers.len() as u32).to_le_bytes());
        p.extend_from_slice(&(text.len() as u32).to_le_bytes());
        let mut kinds = [0u8; 8];
        for (k, (kind, _)) in kinds.iter_mut().zip(numbers) {
            *k = *kind;
        }
        p.extend_from_slice(&kinds);
        for (_, bits) in numbers {
            p.extend_from_slice(&bits.to_le_bytes());
        }
        p.extend_from_slice(text.as_bytes());
        p
    }

    #[test]
    fn numbers_fill_the_placeholders_in_order_and_the_rest_is_appended() {
        let p = line(
            "page {} of {}: {} ok",
            &[(1, 3), (2, (-1i64) as u64), (3, 2.5f64.to_bits()), (4, 1)],
        );
        assert_eq!(format(&p), "page 3 of -1: 2.5 ok true");
    }

    #[test]
    fn more_placeholders_than_numbers_stay_as_written() {
        assert_eq!(format(&line("a {} b {}", &[(1, 7)])), "a 7 b {}");
    }

    #[test]
    fn a_truncated_payload_keeps_what_it_has() {
        let mut p = line("hello", &[(1, 1)]);
        p.truncate(p.len() - 2);
        assert_eq!(format(&p), "hel 1");
        assert_eq!(format(&[]), "(empty log line)");
    }

    #[test]
    fn levels_map_to_log_levels() {
        assert_eq!(level(1), log::Level::Error);
        assert_eq!(level(5), log::Level::Trace);
        assert_eq!(level(99), log::Level::Info);
    }
}
