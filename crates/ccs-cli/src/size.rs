//! SIZE arguments: plain bytes, or a number with a binary unit suffix.
//!
//! `K`, `M`, `G` (and `KiB`, `MiB`, `GiB`, and `KB`/`MB`/`GB` spelled out) are powers of 1024;
//! case does not matter, and a space may separate number and unit. `B` alone means bytes.
//!
//! ```text
//! 4096 -> 4096      64K -> 65536      1MiB -> 1048576      2 g -> 2147483648
//! ```

/// Why a SIZE argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Nothing was given.
    #[error("size is empty; give bytes such as `65536`, or a suffix such as `64K` or `1MiB`")]
    Empty,
    /// The number part is missing or not a whole number.
    #[error("size `{0}` does not start with a whole number; write e.g. `64K` or `1048576`")]
    BadNumber(String),
    /// The unit is not one of the accepted ones.
    #[error(
        "size `{input}` has unknown unit `{unit}`; use K, M, G (or KiB, MiB, GiB), powers of 1024"
    )]
    BadUnit {
        /// The whole argument.
        input: String,
        /// The unit as written.
        unit: String,
    },
    /// The value does not fit in 64 bits.
    #[error("size `{0}` is too large")]
    Overflow(String),
}

/// Parse a SIZE argument into bytes.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(SizeError::Empty);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(SizeError::BadNumber(input.to_owned()));
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| SizeError::Overflow(input.to_owned()))?;
    let unit = unit.trim();
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(SizeError::BadUnit {
                input: input.to_owned(),
                unit: unit.to_owned(),
            });
        }
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::Overflow(input.to_owned()))
}

/// Render bytes for people: the largest binary unit that divides it exactly (`64 KiB`,
/// `1 MiB`), else plain bytes (`1000 B`).
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        let scale = 1u64 << shift;
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{} {unit}", bytes / scale);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_bytes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 12b "), Ok(12));
    }

    #[test]
    fn suffixes_are_powers_of_1024_any_case() {
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("64kib"), Ok(64 << 10));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1mb"), Ok(1 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert_eq!(parse_size("   "), Err(SizeError::Empty));
        assert!(matches!(parse_size("K"), Err(SizeError::BadNumber(_))));
        assert!(matches!(parse_size("-1"), Err(SizeError::BadNumber(_))));
        assert!(matches!(parse_size("1.5M"), Err(SizeError::BadUnit { .. })));
        assert!(matches!(parse_size("12Q"), Err(SizeError::BadUnit { .. })));
        assert!(matches!(parse_size("1T"), Err(SizeError::BadUnit { .. })));
    }

    #[test]
    fn refuses_overflow() {
        assert!(matches!(
            parse_size("99999999999999999999"),
            Err(SizeError::Overflow(_))
        ));
        assert!(matches!(
            parse_size("17179869184G"),
            Err(SizeError::Overflow(_))
        ));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn formats_exact_units() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1000), "1000 B");
        assert_eq!(format_size(64 << 10), "64 KiB");
        assert_eq!(format_size(1 << 20), "1 MiB");
        assert_eq!(format_size(3 << 30), "3 GiB");
        assert_eq!(format_size((1 << 20) + 1024), "1025 KiB");
    }
}
