//! Pieces every page uses: tables with empty states, times, notices, buttons, pagers
//! and JSON shown as rows. All of them take text and let the template escape it.

use excalibur_core::ShownOnce;
use maud::{Markup, html};
use serde_json::Value;

use super::Ui;
use crate::ApiError;

/// A table: `headers`, then `rows` of cells; `empty` (what to do next) when there are none.
pub(super) fn table(id: &str, headers: &[&str], rows: Vec<Vec<Markup>>, empty: &Markup) -> Markup {
    html! {
        table id=(id) {
            thead { tr { @for h in headers { th { (h) } } } }
            tbody {
                @if rows.is_empty() {
                    tr { td.empty colspan=(headers.len()) { (empty) } }
                }
                @for row in rows { tr { @for cell in row { td { (cell) } } } }
            }
        }
    }
}

/// An RFC 3339 time; the script adds how long ago it was.
pub(super) fn time(ts: &str) -> Markup {
    html! { time datetime=(ts) title=(ts) { (ts) } }
}

pub(super) fn code(s: &str) -> Markup {
    html! { code { (s) } }
}

pub(super) fn yes_no(b: bool) -> Markup {
    html! { (if b { "yes" } else { "no" }) }
}

pub(super) fn error_box(e: &ApiError) -> Markup {
    html! { p.error role="alert" { (e.detail()) } }
}

/// A value shown once after it is created (a token, a signing secret): the one place
/// the UI reads a secret's text.
pub(super) fn once_box(label: &str, value: &ShownOnce) -> Markup {
    let value = value.expose();
    html! {
        div.once role="status" {
            p { (label) " (shown once; store it now):" }
            code #shown-once { (value) }
        }
    }
}

/// A one-button form posting to `action` (with the CSRF field).
pub(super) fn post_button(ui: &Ui, action: &str, label: &str, danger: bool) -> Markup {
    html! {
        form method="post" action=(action) {
            (ui.csrf())
            button.danger[danger] { (label) }
        }
    }
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'*' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `base?k=v&...` with the non-empty pairs.
pub(super) fn url(base: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", encode(v)))
        })
        .collect();
    if query.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", query.join("&"))
    }
}

/// A page of a newest-first list read with a cursor: which links to offer.
pub(super) struct Pager {
    /// The link to older records, if there are any.
    pub(super) older: Option<String>,
    /// The link to newer records, if there are any.
    pub(super) newer: Option<String>,
    /// The link to the newest page, when this is not it.
    pub(super) newest: Option<String>,
}

/// Where a page read by cursor came from and what it found, for [`Pager::links`].
pub(super) struct PageRead<'a> {
    /// The page's URL without cursor.
    pub(super) base: &'a str,
    /// The filters to keep in every link.
    pub(super) filters: &'a [(&'a str, Option<&'a str>)],
    /// The cursor asked for: `before` (older than) or `after` (newer than).
    pub(super) before: Option<i64>,
    pub(super) after: Option<i64>,
    /// Whether the read found more than a page.
    pub(super) more: bool,
    /// The seqs of the first (newest) and last (oldest) rows shown.
    pub(super) first: Option<i64>,
    pub(super) last: Option<i64>,
}

impl Pager {
    /// The links of a newest-first page: Older when older rows exist (a page read
    /// forward always has them), Newer when newer ones do, Newest when not on it.
    pub(super) fn links(p: &PageRead<'_>) -> Self {
        let forward = p.after.is_some();
        let link = |k: &str, seq: Option<i64>| {
            seq.map(|n| {
                let n = n.to_string();
                let mut pairs = p.filters.to_vec();
                pairs.push((k, Some(n.as_str())));
                url(p.base, &pairs)
            })
        };
        Pager {
            older: if forward || p.more {
                link("before", p.last)
            } else {
                None
            },
            newer: if p.before.is_some() || (forward && p.more) {
                link("after", p.first)
            } else {
                None
            },
            newest: (p.before.is_some() || forward).then(|| url(p.base, p.filters)),
        }
    }

    pub(super) fn render(&self) -> Markup {
        html! {
            nav.pager aria-label="pages" {
                @if let Some(u) = &self.newest { a rel="first" href=(u) { "Newest" } }
                @if let Some(u) = &self.newer { a rel="prev" href=(u) { "← Newer" } }
                @if let Some(u) = &self.older { a rel="next" href=(u) { "Older →" } }
            }
        }
    }
}

/// A JSON object as key/value rows; nested objects and arrays collapsed.
pub(super) fn details(v: &Value) -> Markup {
    let Some(map) = v.as_object() else {
        return html! { code { (excalibur_core::canonical::to_string(v)) } };
    };
    html! {
        dl.kv {
            @for (k, v) in map {
                dt { (k) }
                dd {
                    @match v {
                        Value::String(s) => { (s) }
                        Value::Object(m) if !m.is_empty() => {
                            details {
                                summary { (m.len()) " fields" }
                                (self::details(v))
                            }
                        }
                        Value::Array(a) if !a.is_empty() && short_scalars(a) => {
                            code { (a.iter().map(scalar).collect::<Vec<_>>().join(", ")) }
                        }
                        Value::Array(a) if !a.is_empty() => {
                            details {
                                summary { (a.len()) @if a.len() == 1 { " item" } @else { " items" } }
                                pre { (serde_json::to_string_pretty(v).unwrap_or_default()) }
                            }
                        }
                        other => { code { (other.to_string()) } }
                    }
                }
            }
        }
    }
}

/// A string as itself, anything else as JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether an array is a few scalars, shown inline rather than collapsed.
fn short_scalars(a: &[Value]) -> bool {
    a.len() <= 8
        && a.iter().all(|v| !v.is_object() && !v.is_array())
        && a.iter().map(|v| scalar(v).len()).sum::<usize>() <= 200
}
