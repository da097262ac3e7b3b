//! AGE rendering: apimachinery's `duration.HumanDuration` and the printers'
//! `translateTimestampSince`.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};

/// apimachinery's `HumanDuration`: about 2–3 significant figures, e.g. 78h → `3d6h`.
///
/// Below −1 s the clocks disagree too much (`<invalid>`); up to 2 s of skew reads as `0s`.
/// A zero smaller unit is dropped (`5m`, not `5m0s`).
pub fn human_duration(d: Duration) -> String {
    // Go converts with truncation toward zero, as chrono's num_* accessors do.
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

/// Renders an AGE cell from a timestamp (RFC 3339, as `creationTimestamp`):
/// `<unknown>` when it is missing, unparsable or Go's zero time.
pub fn age(timestamp: Option<&str>, now: DateTime<Utc>) -> String {
    match timestamp.and_then(parse_time) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".to_string(),
    }
}

/// Parses a `metav1.Time`/`MicroTime` wire value; `None` for the zero time (which Go's
/// `IsZero` reports) or anything that is not RFC 3339.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    if is_go_zero(&t) {
        return None;
    }
    Some(t)
}

/// Go's zero `time.Time`: 0001-01-01T00:00:00Z.
fn is_go_zero(t: &DateTime<Utc>) -> bool {
    t.year() == 1
        && t.month() == 1
        && t.day() == 1
        && t.hour() == 0
        && t.minute() == 0
        && t.second() == 0
        && t.nanosecond() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hd(seconds: i64) -> String {
        human_duration(Duration::seconds(seconds))
    }

    const M: i64 = 60;
    const H: i64 = 60 * M;
    const D: i64 = 24 * H;
    const Y: i64 = 365 * D;

    #[test]
    fn seconds_range() {
        assert_eq!(hd(0), "0s");
        assert_eq!(hd(1), "1s");
        assert_eq!(hd(59), "59s");
        assert_eq!(hd(60), "60s");
        assert_eq!(hd(119), "119s");
    }

    #[test]
    fn clock_skew() {
        assert_eq!(hd(-1), "0s");
        assert_eq!(human_duration(Duration::milliseconds(-1999)), "0s");
        assert_eq!(hd(-2), "<invalid>");
        assert_eq!(hd(-3600), "<invalid>");
        // Sub-second values truncate toward zero.
        assert_eq!(human_duration(Duration::milliseconds(1999)), "1s");
    }

    #[test]
    fn minutes_range() {
        assert_eq!(hd(2 * M), "2m");
        assert_eq!(hd(2 * M + 1), "2m1s");
        assert_eq!(hd(5 * M + 30), "5m30s");
        assert_eq!(hd(9 * M + 59), "9m59s");
        assert_eq!(hd(10 * M), "10m");
        assert_eq!(hd(10 * M + 59), "10m");
        assert_eq!(hd(3 * H - 1), "179m");
    }

    #[test]
    fn hours_range() {
        assert_eq!(hd(3 * H), "3h");
        assert_eq!(hd(3 * H + 59), "3h");
        assert_eq!(hd(3 * H + M), "3h1m");
        assert_eq!(hd(7 * H + 59 * M), "7h59m");
        assert_eq!(hd(8 * H), "8h");
        assert_eq!(hd(8 * H + 30 * M), "8h");
        assert_eq!(hd(47 * H), "47h");
    }

    #[test]
    fn days_range() {
        assert_eq!(hd(48 * H), "2d");
        assert_eq!(hd(78 * H), "3d6h");
        assert_eq!(hd(3 * D), "3d");
        assert_eq!(hd(8 * D - 1), "7d23h");
        assert_eq!(hd(8 * D), "8d");
        assert_eq!(hd(41 * D + 5 * H), "41d");
        assert_eq!(hd(400 * D), "400d");
        assert_eq!(hd(2 * Y - 1), "729d");
    }

    #[test]
    fn years_range() {
        assert_eq!(hd(2 * Y), "2y");
        assert_eq!(hd(2 * Y + 10 * D), "2y10d");
        assert_eq!(hd(8 * Y - D), "7y364d");
        assert_eq!(hd(8 * Y), "8y");
        assert_eq!(hd(20 * Y + 100 * D), "20y");
    }

    #[test]
    fn age_from_timestamp() {
        let now = DateTime::parse_from_rfc3339("2024-05-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(age(Some("2024-05-10T11:59:47Z"), now), "13s");
        assert_eq!(age(Some("2024-05-07T06:00:00Z"), now), "3d6h");
        assert_eq!(age(Some("2024-05-10T12:00:01Z"), now), "0s");
        assert_eq!(age(Some("2024-05-10T12:00:05Z"), now), "<invalid>");
        assert_eq!(age(Some("2024-05-10T13:00:00+01:00"), now), "0s");
        assert_eq!(age(Some("2024-05-10T11:54:29.500000Z"), now), "5m30s");
        assert_eq!(age(None, now), "<unknown>");
        assert_eq!(age(Some("0001-01-01T00:00:00Z"), now), "<unknown>");
        assert_eq!(age(Some("yesterday"), now), "<unknown>");
    }
}
