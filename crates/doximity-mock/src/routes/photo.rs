//! `GET /photos/{sub}.svg`: the demo clinicians' profile photos, served by the mock itself so
//! that a page showing them needs no network.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse as _, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::model::Clinician;
use crate::pages::{self, escape};
use crate::state::Shared;

/// Background colours for the portraits, each dark enough for white initials (contrast
/// above 4.5:1).
const COLOURS: [&str; 4] = ["#1f5f8b", "#7a3e9d", "#2e6b3a", "#9c3b2c"];

/// The path of a clinician's photo under the provider's browser-facing base URL.
pub(crate) fn photo_path(sub: &str) -> String {
    format!("/photos/{sub}.svg")
}

/// `GET /photos/{sub}.svg`: a portrait (initials on a coloured disc) of a demo clinician.
pub(crate) async fn photo(State(shared): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    let state = shared.lock();
    let Some((index, clinician)) = file.strip_suffix(".svg").and_then(|sub| {
        state
            .clinicians
            .iter()
            .enumerate()
            .find(|(_, c)| c.sub == sub)
    }) else {
        return pages::error_page(
            StatusCode::NOT_FOUND,
            "No such photo",
            "Only the demo clinicians have photos.",
        );
    };
    let body = portrait(clinician, COLOURS[index % COLOURS.len()]);
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

fn portrait(clinician: &Clinician, colour: &str) -> String {
    let initials: String = [&clinician.given_name, &clinician.family_name]
        .iter()
        .filter_map(|name| name.chars().next())
        .collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"160\" height=\"160\" \
         viewBox=\"0 0 160 160\" role=\"img\"><title>{name}</title>\
         <rect width=\"160\" height=\"160\" fill=\"{colour}\"/>\
         <circle cx=\"80\" cy=\"62\" r=\"30\" fill=\"#ffffff\" fill-opacity=\".18\"/>\
         <path d=\"M22 160c6-34 30-50 58-50s52 16 58 50z\" fill=\"#ffffff\" fill-opacity=\".18\"/>\
         <text x=\"80\" y=\"96\" text-anchor=\"middle\" font-family=\"system-ui,sans-serif\" \
         font-size=\"52\" font-weight=\"600\" fill=\"#ffffff\">{initials}</text></svg>",
        name = escape(&clinician.name),
        initials = escape(&initials),
    )
}
