//! Small formatting helpers: the clock, times of messages, byte counts.
//!
//! Times come from the browser's `Date` (local time zone) instead of a date
//! crate, to keep the bundle small.

use js_sys::Date;
use wasm_bindgen::JsValue;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Milliseconds since the Unix epoch, by the browser's clock.
#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> u64 {
    Date::now() as u64
}

/// Milliseconds since the Unix epoch (native builds run the unit tests).
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn date(ms: u64) -> Date {
    Date::new(&JsValue::from_f64(ms as f64))
}

/// `14:05` for today, `3 Nov 14:05` for an earlier day.
pub fn short_time(ms: u64) -> String {
    let d = date(ms);
    let today = Date::new_0();
    let clock = format!("{:02}:{:02}", d.get_hours(), d.get_minutes());
    let same_day = d.get_date() == today.get_date()
        && d.get_month() == today.get_month()
        && d.get_full_year() == today.get_full_year();
    if same_day {
        clock
    } else {
        format!(
            "{} {} {clock}",
            d.get_date(),
            MONTHS[d.get_month() as usize % 12]
        )
    }
}

/// `2026-11-03 14:05:09`, for tooltips.
pub fn full_time(ms: u64) -> String {
    let d = date(ms);
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    )
}

/// ISO 8601 in UTC, for `<time datetime>`.
pub fn iso_time(ms: u64) -> String {
    String::from(date(ms).to_iso_string())
}

/// Whole seconds, rounded up, for "retrying in 3 s".
pub fn seconds(ms: u32) -> u32 {
    ms.div_ceil(1000)
}
