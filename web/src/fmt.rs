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

/// `true` or `false`, for ARIA states: a static string, not a `String`
/// made (and copied into the page) on every render.
pub fn flag(on: bool) -> &'static str {
    if on {
        "true"
    } else {
        "false"
    }
}

/// Whole seconds, rounded up, for "retrying in 3 s".
pub fn seconds(ms: u32) -> u32 {
    ms.div_ceil(1000)
}

/// `20261130-210512`: the local time, for names of pasted images.
pub fn stamp(ms: u64) -> String {
    full_time(ms).replace(['-', ':'], "").replace(' ', "-")
}

/// `512 B`, `48.2 kB`, `3.1 MB`: a file's size for people (powers of 1000,
/// integer arithmetic: float formatting would cost the bundle).
pub fn size(bytes: u64) -> String {
    let (unit, scale) = match bytes {
        0..1_000 => return format!("{bytes} B"),
        1_000..1_000_000 => ("kB", 1_000),
        1_000_000..1_000_000_000 => ("MB", 1_000_000),
        _ => ("GB", 1_000_000_000),
    };
    let tenths = (bytes * 10 + scale / 2) / scale;
    format!("{}.{} {unit}", tenths / 10, tenths % 10)
}

/// An image's size on screen: `width` × `height` scaled down (never up) to
/// fit in `max` pixels a side, so the page keeps its place while it loads.
pub fn fit(width: u32, height: u32, max: u32) -> (u32, u32) {
    let long = width.max(height).max(1);
    if long <= max {
        return (width.max(1), height.max(1));
    }
    let scale =
        |side: u32| ((side as u64 * max as u64 + long as u64 / 2) / long as u64).max(1) as u32;
    (scale(width), scale(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1_000), "1.0 kB");
        assert_eq!(size(48_213), "48.2 kB");
        assert_eq!(size(999_949), "999.9 kB");
        assert_eq!(size(26_214_400), "26.2 MB");
        assert_eq!(size(3_000_000_000), "3.0 GB");
    }

    #[test]
    fn images_fit_their_box_keeping_their_shape() {
        assert_eq!(fit(640, 480, 320), (320, 240));
        assert_eq!(fit(480, 640, 320), (240, 320));
        assert_eq!(fit(100, 50, 320), (100, 50));
        assert_eq!(fit(12_000, 10, 320), (320, 1));
        assert_eq!(fit(0, 0, 320), (1, 1));
    }
}
