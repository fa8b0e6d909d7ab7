//! The web app bundle, served at `/`.

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// Serves a file of the web bundle.
pub async fn serve(_uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        "the web app is not built into this binary",
    )
        .into_response()
}
