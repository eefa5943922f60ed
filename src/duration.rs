//! Durations as users write them (`--since 2h`, `/gitlab mute … for 30m`): a whole number and one
//! unit, `s`, `m`, `h` or `d`. One parser, so the command line and the Cliq extension agree.

use std::time::Duration;

/// Parses `30s`, `15m`, `2h` or `7d`; `None` for anything else (no unit, another unit, a sign,
/// spaces, a number too large).
pub fn parse(s: &str) -> Option<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3_600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_and_one_unit() {
        assert_eq!(parse("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse("2h"), Some(Duration::from_secs(7_200)));
        assert_eq!(parse("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
        for bad in [
            "",
            "2",
            "h",
            "2w",
            "-2h",
            "2 h",
            "1.5h",
            "2hh",
            "99999999999999999999d",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
