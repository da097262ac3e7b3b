//! Go's text renderings that kube-proxy's HTTP answers expose: `time.Time.String()` (with its
//! monotonic-clock suffix) and `strconv.FormatFloat(v, 'g', -1, 64)` (Prometheus values).

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

static PROCESS_START: OnceLock<Instant> = OnceLock::new();

/// The reference of the monotonic clock readings (`m=+…`): Go's is the process start; ours is
/// the first call of this function, made at the start of `run`.
pub fn process_start() -> Instant {
    *PROCESS_START.get_or_init(Instant::now)
}

/// A point in time as Go's `time.Now()` returns it: wall clock plus monotonic reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub wall: DateTime<Utc>,
    /// Time since [`process_start`].
    pub monotonic: Duration,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let start = process_start();
        Timestamp {
            wall: DateTime::<Utc>::from(SystemTime::now()),
            monotonic: Instant::now().saturating_duration_since(start),
        }
    }

    /// Go's `time.Time.String()`: `2006-01-02 15:04:05.999999999 +0000 UTC m=+1.000000001`
    /// (fraction without trailing zeros; times are rendered in UTC).
    pub fn go_string(&self) -> String {
        let mut text = go_wall_string(&self.wall);
        let secs = self.monotonic.as_secs();
        let nanos = self.monotonic.subsec_nanos();
        text.push_str(&format!(" m=+{secs}.{nanos:09}"));
        text
    }

    /// Seconds since the Unix epoch (for Prometheus timestamps).
    pub fn unix_seconds(&self) -> f64 {
        self.wall.timestamp() as f64 + f64::from(self.wall.timestamp_subsec_nanos()) / 1e9
    }
}

/// The wall-clock part of Go's `time.Time.String()` for a UTC time.
pub fn go_wall_string(wall: &DateTime<Utc>) -> String {
    let mut text = wall.format("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = wall.timestamp_subsec_nanos();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push_str(" +0000 UTC");
    text
}

/// Go's zero `time.Time` as `String()` renders it.
pub const GO_ZERO_TIME: &str = "0001-01-01 00:00:00 +0000 UTC";

/// `strconv.FormatFloat(v, 'g', -1, 64)`, the rendering of Prometheus values: the shortest
/// round-tripping digits, in exponent form (`1e+06`, `1e-05`) when the decimal exponent is
/// below -4 or at least 6.
pub fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits: `d.ddddde±x`.
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("numeric exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if !(-4..6).contains(&exponent) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exponent.abs()));
        return out;
    }
    if exponent < 0 {
        out.push_str("0.");
        for _ in 0..(-exponent - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn go_time_strings() {
        let wall = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 3).unwrap()
            + chrono::Duration::nanoseconds(52_484_470);
        let ts = Timestamp {
            wall,
            monotonic: Duration::new(1187, 577_812_613),
        };
        assert_eq!(
            ts.go_string(),
            "2024-05-01 10:00:03.05248447 +0000 UTC m=+1187.577812613"
        );
        let whole = Timestamp {
            wall: Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 3).unwrap(),
            monotonic: Duration::from_millis(5),
        };
        assert_eq!(
            whole.go_string(),
            "2024-05-01 10:00:03 +0000 UTC m=+0.005000000"
        );
    }

    #[test]
    fn go_floats() {
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.001), "0.001");
        assert_eq!(go_float(16.384), "16.384");
        assert_eq!(go_float(0.25), "0.25");
        assert_eq!(go_float(300.0), "300");
        assert_eq!(go_float(100000.0), "100000");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(1.714567890123e9), "1.714567890123e+09");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(0.000123), "0.000123");
        assert_eq!(go_float(-2.5), "-2.5");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
    }
}
