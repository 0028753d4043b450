//! Timestamps as Docker prints them: RFC 3339 in UTC for `inspect`, and "5 seconds ago" /
//! "Up 2 minutes" for `ps`. The calendar arithmetic is `humantime`'s (the launcher's logrus-style
//! warning lines use it too); Docker's relative wording is reproduced here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `2024-05-01T12:34:56.123456789Z`; `0001-01-01T00:00:00Z` (Go's zero time) for 0.
pub fn rfc3339(secs: f64) -> String {
    if secs <= 0.0 {
        return "0001-01-01T00:00:00Z".into();
    }
    let t = UNIX_EPOCH + std::time::Duration::from_secs_f64(secs);
    humantime::format_rfc3339_nanos(t).to_string()
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
