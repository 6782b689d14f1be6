//! `/openapi.json` and the explorer at `/docs`, through the real server stack (including its
//! trailing-slash normalisation).

use tessera_testkit::{status_and_json, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_and_its_offline_explorer_are_served() {
    let app = TestApp::spawn().await;
    let (status, doc) = status_and_json(app.get("/openapi.json").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Tessera");
    assert!(doc["paths"]["/api/v1/users/me"]["get"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // The page, at /docs and at /docs/ (trimmed to /docs), rebased so its assets load from
    // /docs/… and nothing from elsewhere.
    for path in ["/docs", "/docs/"] {
        let page = app.get(path).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"<base href="docs/">"#), "{html}");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
    }
    let bundle = app.get("/docs/swagger-ui-bundle.js").send().await.unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    let initializer = app
        .get("/docs/swagger-initializer.js")
        .send()
        .await
        .unwrap();
    assert!(initializer
        .text()
        .await
        .unwrap()
        .contains(r#""url": "../openapi.json""#));
    let missing = app.get("/docs/no-such-asset.js").send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
