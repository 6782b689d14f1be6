//! The API description and its explorer: `GET /openapi.json`, and Swagger UI at `/docs`, whose
//! files are compiled into the binary (`utoipa-swagger-ui`'s `vendored` feature), so the page
//! works without internet.

use std::sync::{Arc, OnceLock};

use actix_web::{web, HttpResponse};
use utoipa_swagger_ui::Config;

use crate::routes::{op, Routes};

/// Where the explorer finds the document, relative to the page's base (`/docs/`), so it also
/// works behind a path-prefixing proxy.
const DOCUMENT_URL: &str = "../openapi.json";

pub fn configure(routes: &mut Routes) {
    routes
        .op(op!(openapi_json))
        .op(op!(docs_page))
        .op_at("/docs/{file:.*}", op!(docs_asset));
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
    security(),
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

/// The explorer's page. The server trims trailing slashes, so the page lives at `/docs` and a
/// `<base href="docs/">` makes its relative asset URLs resolve under `/docs/`.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs_page",
    security(),
    tag = "operations",
    responses(
        (status = 200, description = "The API explorer (Swagger UI) over `/openapi.json`", content_type = "text/html", body = String),
        (status = 500, description = "The embedded page could not be read (a bug)"),
    ),
)]
pub(crate) async fn docs_page() -> HttpResponse {
    match explorer_page() {
        Some(page) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(page),
        None => HttpResponse::InternalServerError().finish(),
    }
}

fn explorer_config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(Config::new([DOCUMENT_URL])))
        .clone()
}

/// Swagger UI's `index.html`, rebased under `/docs/` and titled.
fn explorer_page() -> Option<String> {
    let index = match utoipa_swagger_ui::serve("index.html", explorer_config()) {
        Ok(Some(file)) => file,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the API explorer's page");
            return None;
        }
    };
    let html = String::from_utf8(index.bytes.into_owned()).ok()?;
    Some(
        html.replacen("<head>", r#"<head><base href="docs/">"#, 1)
            .replacen("<title>Swagger UI</title>", "<title>Tessera API</title>", 1),
    )
}

/// One of the explorer's assets, served from the binary.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    operation_id = "docs_asset",
    security(),
    tag = "operations",
    params(("file" = String, Path, description = "An asset of the page (`swagger-ui.css`, `swagger-ui-bundle.js`, …)")),
    responses(
        (status = 200, description = "The asset", content_type = "application/octet-stream", body = String),
        (status = 404, description = "No such asset"),
        (status = 500, description = "The embedded asset could not be read (a bug)"),
    ),
)]
pub(crate) async fn docs_asset(file: web::Path<String>) -> HttpResponse {
    if file.is_empty() || file.as_str() == "index.html" {
        return docs_page().await;
    }
    match utoipa_swagger_ui::serve(&file, explorer_config()) {
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
