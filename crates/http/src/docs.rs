//! The API description and its explorer: `GET /openapi.json`, and Swagger UI at `/docs/`, whose
//! files are compiled into the binary (`utoipa-swagger-ui`'s `vendored` feature), so the page
//! works without internet.

use std::sync::{Arc, OnceLock};

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa_swagger_ui::Config;

use crate::routes::Routes;

/// Where the explorer finds the document: relative to the page, so it also works behind a
/// path-prefixing proxy.
const DOCUMENT_URL: &str = "../openapi.json";

pub fn configure(routes: &mut Routes) {
    routes
        .get("/openapi.json", openapi_json)
        .get("/docs", docs_redirect)
        .get("/docs/{file:.*}", docs_file);
}

/// The document, serialised once: it only changes with the binary.
fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        crate::openapi::document()
            .to_json()
            .unwrap_or_else(|e| format!(r#"{{"error": "cannot serialise the document: {e}"}}"#))
    })
}

/// This OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_document",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of every surface", content_type = "application/json", body = Object),
    ),
)]
pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}

/// The explorer lives at `/docs/`: its files are fetched relative to that.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs_redirect",
    tag = "operations",
    responses(
        (status = 308, description = "Redirect to the explorer at `/docs/`", headers(("Location" = String, description = "`docs/`"))),
    ),
)]
pub(crate) async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "docs/"))
        .finish()
}

/// The API explorer (Swagger UI) and its assets, served from the binary.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    operation_id = "docs_file",
    tag = "operations",
    params(("file" = String, Path, description = "Empty for the page itself, else an asset (`swagger-ui.css`, …)")),
    responses(
        (status = 200, description = "The explorer page or one of its assets", content_type = "text/html", body = String),
        (status = 404, description = "No such asset"),
    ),
)]
pub(crate) async fn docs_file(file: web::Path<String>) -> HttpResponse {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| Arc::new(Config::new([DOCUMENT_URL])))
        .clone();
    match utoipa_swagger_ui::serve(&file, config) {
        Ok(Some(asset)) => HttpResponse::Ok()
            .content_type(asset.content_type)
            .body(asset.bytes.into_owned()),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serve the API explorer");
            HttpResponse::InternalServerError().finish()
        }
    }
}
