use crate::helpers::TestApp;

#[actix_web::test]
async fn the_openapi_document_lists_every_mounted_route() {
    let app = TestApp::spawn().await;
    let r = app.send("GET", "/api/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    let doc = r.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let paths = doc["paths"].as_object().unwrap();
    let documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), p.trim_end_matches('/').to_owned()))
        })
        .collect();
    let mounted = fleetca::http::mounted();
    assert!(!mounted.is_empty());
    for (method, path) in &mounted {
        assert!(
            documented.contains(&(method.clone(), path.clone())),
            "{method} {path} is mounted but not in the OpenAPI document"
        );
    }
    for (method, path) in &documented {
        assert!(
            mounted.contains(&(method.clone(), path.clone())),
            "{method} {path} is documented but not mounted"
        );
    }
    // Every documented operation with a 4xx answer documents problem+json, except EST's,
    // whose errors RFC 7030 makes plain text (and which say so).
    for (path, ops) in paths {
        if path.starts_with("/.well-known/est/") {
            for (_, op) in ops.as_object().unwrap() {
                for (status, resp) in op["responses"].as_object().unwrap() {
                    if status.starts_with('4') {
                        assert!(resp["content"]["text/plain"].is_object(), "{path} {status}: {resp}");
                    }
                }
            }
            continue;
        }
        for (_, op) in ops.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') && status != "404" || status == "404" && resp.get("content").is_some() {
                    assert!(
                        resp["content"]["application/problem+json"].is_object(),
                        "{status}: {resp}"
                    );
                }
            }
        }
    }
    let docs = app.send("GET", "/api/docs/", None, None).await;
    assert_eq!(docs.status, 200);
    assert!(String::from_utf8_lossy(&docs.raw).contains("swagger"));
}
