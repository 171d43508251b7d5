//! Sign in with Doximity for axum: extractors over `tower-doximity` (in progress).
