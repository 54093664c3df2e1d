//! The status page against a real server on the test swarm: the sign-in form without a
//! session, a refused token, a viewer's session cookie and its flags, the overview with a
//! service's last job (and without a service outside the tenant's scope), the security
//! headers, sign-out, and no token anywhere it should not be.

// Test code: a panic with the value is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

const VIEWER: &str = "viewer-5d0c7a1e93";

fn browser() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs in with `token`: the answer's status, its `Set-Cookie` and its body.
async fn sign_in(server: &Server, token: &str) -> (u16, Option<String>, String) {
    let answer = browser()
        .post(format!("{}/ui/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    if status == 303 {
        assert_eq!(answer.headers()["location"], "/");
    }
    let cookie = answer.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned());
    (status, cookie, answer.text().await.unwrap())
}

/// `GET /` with `cookie` (its `name=value` part): the status, the CSP and the body.
async fn home(server: &Server, cookie: Option<&str>) -> (u16, String, String) {
    let mut request = browser().get(format!("{}/", server.url));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie.split(';').next().unwrap());
    }
    let answer = request.send().await.unwrap();
    let csp = answer.headers()["content-security-policy"].to_str().unwrap().to_owned();
    (answer.status().as_u16(), csp, answer.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_signs_in_sees_its_tenants_services_and_signs_out() {
    let s = dockhand_e2e::swarm().await;
    let tenant = dockhand_e2e::unique_name("ui");
    let (ours, _g1) =
        service(&s, "ui-in", &[("dockhand.tenant", &tenant), ("dockhand.update.enable", "true")]).await;
    let (theirs, _g2) = service(&s, "ui-out", &[("dockhand.update.enable", "true")]).await;
    let config = format!("scope:\n  selector: dockhand.tenant={tenant}\n");
    let server = Server::start(s.manager_url(), &config, &[("DOCKHAND_VIEWER_TOKENS", VIEWER)]).await;
    let (status, job) =
        server.post(&format!("/v1/services/{ours}/update"), Some(ADMIN), &update_body()).await;
    assert_eq!(status, 200, "{job}");
    let result = job["status"].as_str().unwrap().to_owned();

    // No session: the sign-in form alone, under a strict CSP.
    let (status, csp, body) = home(&server, None).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"action="/ui/login""#) && !body.contains("service/"), "{body}");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!body.contains("<script"), "no JavaScript: {body}");

    // A wrong token: refused, no cookie.
    let (status, cookie, body) = sign_in(&server, "not-a-token").await;
    assert_eq!((status, cookie), (401, None));
    assert!(body.contains("not accepted"), "{body}");

    // A viewer: a session cookie, HttpOnly and SameSite=Strict (no Secure over plain HTTP).
    let (status, cookie, _) = sign_in(&server, VIEWER).await;
    assert_eq!(status, 303);
    let cookie = cookie.expect("a session cookie");
    assert!(cookie.starts_with("dockhand_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains(VIEWER) && !cookie.contains("Secure"), "{cookie}");

    let (status, _, page) = home(&server, Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("service/{ours}")), "{page}");
    assert!(!page.contains(&theirs), "a service outside the scope is shown: {page}");
    assert!(page.contains("viewer#1"), "{page}");
    assert!(
        page.contains(&format!(r#"class="status {result}""#)),
        "the last update ({result}) is not shown: {page}"
    );
    assert!(!page.contains(VIEWER) && !page.contains(ADMIN), "a token is on the page");

    // The history and the job's page.
    let get = |path: String, cookie: Option<String>| {
        let mut request = browser().get(format!("{}{path}", server.url));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie.split(';').next().unwrap().to_owned());
        }
        async move {
            let answer = request.send().await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    let id = job["id"].as_str().unwrap().to_owned();
    let (status, history) =
        get(format!("/ui/jobs?action=update-service&target=service/{ours}"), Some(cookie.clone())).await;
    assert_eq!(status, 200, "{history}");
    assert!(history.contains(&format!(r#"href="/ui/jobs/{id}""#)), "{history}");
    let (status, none) = get("/ui/jobs?status=busy".to_owned(), Some(cookie.clone())).await;
    assert_eq!(status, 200);
    assert!(!none.contains(&format!(r#"href="/ui/jobs/{id}""#)), "a filter is ignored: {none}");
    let (status, one) = get(format!("/ui/jobs/{id}"), Some(cookie.clone())).await;
    assert_eq!(status, 200, "{one}");
    assert!(
        one.contains(&format!("update-service on service/{ours}")) && one.contains("<td>update</td>"),
        "{one}"
    );
    assert_eq!(get("/ui/jobs/not-a-job".to_owned(), Some(cookie.clone())).await.0, 404);
    assert_eq!(get("/ui/jobs".to_owned(), None).await.0, 303, "the history needs a session");
    assert_eq!(get(format!("/ui/jobs/{id}"), None).await.0, 303);

    let css = browser().get(format!("{}/ui/app.css", server.url)).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    // Sign out: the cookie no longer opens the page.
    let out = browser()
        .post(format!("{}/ui/logout", server.url))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    let (_, _, body) = home(&server, Some(&cookie)).await;
    assert!(body.contains(r#"action="/ui/login""#), "{body}");

    // An admin token signs in too.
    let (status, admin_cookie, _) = sign_in(&server, ADMIN).await;
    assert_eq!(status, 303);
    let (_, _, page) = home(&server, admin_cookie.as_deref()).await;
    assert!(page.contains("admin#1"), "{page}");
    server.assert_no_leaks(&[VIEWER]);
}
