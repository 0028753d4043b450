//! Timestamps as Docker prints them: RFC 3339 in UTC for `inspect`, and "5 seconds ago" /
//! "Up 2 minutes" for `ps`. Small enough not to need a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's civil_from_days.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2024-05-01T12:34:56.123456789Z`; `0001-01-01T00:00:00Z` (Go's zero time) for 0.
pub fn rfc3339(secs: f64) -> String {
    if secs <= 0.0 {
        return "0001-01-01T00:00:00Z".into();
    }
    let whole = secs.floor() as i64;
    let nanos = ((secs - secs.floor()) * 1e9).round().min(999_999_999.0) as u32;
    let (y, mo, d) = civil(whole.div_euclid(86_400));
    let s = whole.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Docker's `units.HumanDuration`: "Less than a second", "5 seconds", "About a minute", …
pub fn human(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (m, h) = (s / 60, s / 3600);
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if (s as f64 / 3600.0).round() == 1.0 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ => format!("{} weeks", h / 24 / 7),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0.0), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400.5), "2000-02-29T00:00:00.500000000Z");
        assert_eq!(rfc3339(1_700_000_000.0), "2023-11-14T22:13:20.000000000Z");
    }

    #[test]
    fn human_durations_read_like_docker() {
        assert_eq!(human(0.2), "Less than a second");
        assert_eq!(human(5.0), "5 seconds");
        assert_eq!(human(70.0), "About a minute");
        assert_eq!(human(600.0), "10 minutes");
        assert_eq!(human(3700.0), "About an hour");
        assert_eq!(human(3.0 * 86400.0), "3 days");
    }
}
