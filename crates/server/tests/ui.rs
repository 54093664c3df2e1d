//! The status page against a real server on the test swarm: the sign-in form without a
//! session, a refused token, a viewer's session cookie and its flags, the overview with a
//! service's last job (and without a service outside the tenant's scope), the security
//! headers, sign-out, and no token anywhere it should not be.

// Test code: a panic with the value is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

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
    assert_eq!(
        body.matches("<script").count(),
        body.matches(r#"<script src="/ui/app.js" defer></script>"#).count(),
        "no inline script, only the page's own: {body}"
    );
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");

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
    let js = browser().get(format!("{}/ui/app.js", server.url)).send().await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    // The job's events behind the session: the API's stream, ending with the job.
    let (status, events) = get(format!("/ui/jobs/{id}/events"), Some(cookie.clone())).await;
    assert_eq!(status, 200);
    assert!(events.contains("event: job-finished"), "{events}");
    assert_eq!(get(format!("/ui/jobs/{id}/events"), None).await.0, 401, "the events need a session");

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

/// The page in a real browser (headless Chromium through ChromeDriver): a viewer signs in
/// with the form, sees its service's last backup and not another tenant's service, opens a
/// running job's page and watches it finish there (the page's script follows the job's
/// events and reloads it when it ends; nothing else reloads it), and sees a failing
/// notification channel marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_a_real_browser_a_viewer_signs_in_sees_the_last_backup_and_watches_a_job_finish() {
    use dockhand_e2e::browser::Browser;
    let s = dockhand_e2e::swarm().await;
    let tenant = dockhand_e2e::unique_name("uib");
    let volume = dockhand_e2e::unique_name("uib-vol");
    let labels = [
        ("dockhand.tenant", tenant.as_str()),
        ("dockhand.backup.enable", "true"),
        ("dockhand.backup.volume-list-upload", volume.as_str()),
        ("dockhand.clean.enable", "true"),
        ("dockhand.clean.exec", "sleep 6"),
    ];
    let (ours, _g1) = on_manager(&s, "uib-in", &labels, Some(&volume)).await;
    let (theirs, _g2) = service(&s, "uib-out", &[("dockhand.clean.enable", "true")]).await;
    dockhand_e2e::wait_for_task(s.manager(), &ours, "running").await;
    // A channel nobody listens at: every delivery fails (after its retries, in the background).
    let dead = format!("http://127.0.0.1:{}/hook", free_port());
    let config = format!(
        "scope:\n  selector: dockhand.tenant={tenant}\nnotifications:\n  - name: ops-chat\n    url: generic+{dead}\n    on: [succeeded, failed]\n"
    );
    let server = Server::start(s.manager_url(), &config, &[("DOCKHAND_VIEWER_TOKENS", VIEWER)]).await;
    let (status, backup) = server.post(&format!("/v1/services/{ours}/backup"), Some(ADMIN), "{}").await;
    assert_eq!((status, backup["status"].as_str()), (200, Some("succeeded")), "{backup}\n{}", server.log());

    let browser = Browser::start(1280, 900).await.unwrap();
    browser.open(&format!("{}/", server.url)).await.unwrap();
    browser.type_into("#token", VIEWER).await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    let overview = browser.wait_for(Duration::from_secs(10), |p| p.contains("viewer#1")).await.unwrap();
    assert!(overview.contains(&format!("service/{ours}")), "{overview}");
    assert!(!overview.contains(&theirs), "another tenant's service is shown: {overview}");
    let row = overview.split(&format!("service/{ours}")).nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains(r#"class="status succeeded""#), "the last backup is not shown: {row}");
    assert!(!overview.contains(VIEWER) && !overview.contains(ADMIN), "a token is on the page");

    // A clean that runs for 6 s: its page, opened once, turns to `succeeded` by itself.
    let (status, clean) =
        server.post(&format!("/v1/services/{ours}/clean?wait=false"), Some(ADMIN), "{}").await;
    assert_eq!(status, 202, "{clean}");
    let id = clean["id"].as_str().unwrap().to_owned();
    let page = format!("{}/ui/jobs/{id}", server.url);
    browser.open(&page).await.unwrap();
    let running = browser.source().await.unwrap();
    assert!(running.contains(r#"class="status running""#), "{running}");
    assert!(running.contains(&format!(r#"data-follow="{id}""#)), "{running}");
    let done = browser
        .wait_for(Duration::from_secs(90), |p| p.contains(r#"class="status succeeded""#))
        .await
        .unwrap();
    assert!(done.contains("<td>exec</td>") || done.contains(">exec<"), "the steps are shown: {done}");
    assert_eq!(browser.url().await.unwrap(), page, "the script reloaded the same page");

    // The channel failed to tell of the backup (after its retries): marked on the overview.
    let marked = browser
        .open_until(&format!("{}/", server.url), Duration::from_secs(60), |p| {
            p.contains(r#"<tr class="failing">"#)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert!(marked.contains("ops-chat") && marked.contains("cannot connect"), "{marked}");
    assert!(!marked.contains(&dead), "a channel's URL is on the page: {marked}");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page-test.png");
    browser.screenshot(&shot).await.unwrap();
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "an empty screenshot");
    server.assert_no_leaks(&[VIEWER]);
}
