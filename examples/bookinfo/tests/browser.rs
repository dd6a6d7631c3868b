//! Bookinfo in a real headless browser: Chromium driven over WebDriver (chromedriver) signs in
//! as jason on the product page served through the demo's gateway, and sees what Istio's
//! request-routing task promises: no stars for anonymous users (reviews v1), black stars for
//! jason (reviews v2), none again after signing out.
//!
//! The demo has its own loopback network: pods on `127.0.161.x`, the gateway on
//! `127.0.160.1` (a free port). Real time: a browser cannot run on paused tokio time. Every
//! step has a deadline ([`STEP`]); nothing asserts on speed.
//!
//! chromedriver is found through `MESH_CHROMEDRIVER` or `PATH`, the browser through
//! `MESH_CHROMIUM` or `PATH` (`chromium`, `chromium-browser`, `google-chrome`). When either is
//! missing the test prints why it skipped and passes, unless `MESH_REQUIRE_BROWSER` is set
//! (as in CI), where it fails naming the packages to install (Debian: `chromium`,
//! `chromium-driver`).

use std::fmt::Debug;
use std::fs::File;
use std::future::Future;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bookinfo::demo::{Demo, DemoOptions};
use bytes::Bytes;
use fantoccini::{Client, ClientBuilder, Locator};
use http_body_util::Empty;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// How long any one step (starting chromedriver, a page load, a click and what it leads to,
/// closing the session) may take before the test fails.
const STEP: Duration = Duration::from_secs(30);

/// The packages that provide the browser and its driver on Debian.
const PACKAGES: &str = "chromium and chromium-driver";

/// The executables the test drives.
struct Browser {
    chromedriver: PathBuf,
    chromium: PathBuf,
}

/// `name` as an executable: a path as given when it has a `/`, else looked up in `PATH`.
fn executable(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return path.is_file().then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The executable named by the environment variable `var`, else the first of `names` found.
fn locate(var: &str, names: &[&str]) -> Option<PathBuf> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => executable(&value),
        _ => names.iter().find_map(|name| executable(name)),
    }
}

/// chromedriver and a Chromium-based browser, or `None` (after saying so) when the test must
/// be skipped. Panics when one is missing and `MESH_REQUIRE_BROWSER` is set.
fn find_browser() -> Option<Browser> {
    let chromedriver = locate("MESH_CHROMEDRIVER", &["chromedriver"]);
    let chromium = locate(
        "MESH_CHROMIUM",
        &[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ],
    );
    let missing = match (&chromedriver, &chromium) {
        (Some(_), Some(_)) => None,
        (None, Some(_)) => Some("chromedriver (MESH_CHROMEDRIVER or PATH)"),
        (Some(_), None) => Some("chromium (MESH_CHROMIUM or PATH)"),
        (None, None) => Some("chromedriver and chromium"),
    };
    if let Some(missing) = missing {
        let required = std::env::var_os("MESH_REQUIRE_BROWSER").is_some_and(|v| !v.is_empty());
        assert!(
            !required,
            "the browser test needs a headless browser but {missing} was not found: \
             install {PACKAGES} (Debian: apt-get install chromium chromium-driver), \
             or unset MESH_REQUIRE_BROWSER to skip it"
        );
        // Straight to the process's stderr, past the test harness's capture, so that the
        // skip shows in an ordinary run.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: install {PACKAGES} to run the browser test ({missing} not found)"
        );
        return None;
    }
    Some(Browser {
        chromedriver: chromedriver?,
        chromium: chromium?,
    })
}

/// A free port on `127.0.0.1` for chromedriver (taken and released; chromedriver binds it
/// right after).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A running chromedriver and the browser profile directory; dropping it kills chromedriver
/// and removes the directory, whatever way the test ends. Its log is shown when the test
/// fails.
struct Chromedriver {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Chromedriver {
    /// Starts chromedriver on a free loopback port and waits (at most [`STEP`]) until it
    /// reports itself ready.
    async fn start(browser: &Browser) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "bookinfo-browser-test-{}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("profile")).expect("create the browser's directory");
        let log = File::create(dir.join("chromedriver.log")).expect("create chromedriver's log");
        let child = Command::new(&browser.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", browser.chromedriver.display()));
        let mut driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        driver.wait_ready().await;
        driver
    }

    /// Polls `GET /status` until chromedriver answers that it is ready.
    async fn wait_ready(&mut self) {
        let http = HttpClient::builder(TokioExecutor::new()).build(HttpConnector::new());
        let status: http::Uri = format!("{}/status", self.url).parse().expect("status URL");
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("chromedriver exited before it was ready ({exit})");
            }
            let req = http::Request::get(status.clone())
                .body(Empty::<Bytes>::new())
                .expect("status request");
            if let Ok(Ok(res)) =
                tokio::time::timeout(Duration::from_secs(2), http.request(req)).await
                && res.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not answer on {} within {STEP:?}",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A WebDriver session with headless Chromium, a profile of its own and page-load and
    /// script timeouts of [`STEP`].
    async fn session(&self, browser: &Browser) -> Client {
        let profile = self.dir.join("profile");
        let capabilities = json!({
            "browserName": "chrome",
            "timeouts": {
                "pageLoad": STEP.as_millis() as u64,
                "script": STEP.as_millis() as u64,
                "implicit": 0,
            },
            "goog:chromeOptions": {
                "binary": browser.chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-proxy-server",
                    "--no-first-run",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        step("start a browser session", builder.connect(&self.url)).await
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.join("chromedriver.log"))
        {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("chromedriver's log, last lines:");
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `what` done within [`STEP`], or the test fails saying which step and why.
async fn step<T, E: Debug>(what: &str, fut: impl Future<Output = Result<T, E>>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("{what}: {e:?}"),
        Err(_) => panic!("{what}: no answer within {STEP:?}"),
    }
}

/// Bookinfo's task files, from the workspace's fixtures.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/istio")
        .join(name)
}

/// The demo with Istio's request-routing task applied: jason to reviews v2, everyone else v1.
async fn start_demo() -> Demo {
    let mut options = DemoOptions::default();
    options.gateway_addr = SocketAddr::from((Ipv4Addr::new(127, 0, 160, 1), 0));
    options.network = Ipv4Addr::new(127, 0, 161, 0);
    options.admin_port = 0;
    options.config = [
        "destination-rule-all.yaml",
        "virtual-service-reviews-test-v2.yaml",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect();
    Demo::start(options).await.expect("demo starts")
}

/// The stars on the page as the browser renders them: each `.stars` element's text and
/// computed colour.
async fn stars(client: &Client) -> Vec<(String, String)> {
    let value = step(
        "read the stars",
        client.execute(
            "return Array.from(document.querySelectorAll('.stars'))\
               .map(e => [e.textContent, getComputedStyle(e).color]);",
            Vec::new(),
        ),
    )
    .await;
    serde_json::from_value(value).expect("pairs of strings")
}

/// Which reviews pod served the page ("Reviews served by").
async fn served_by(client: &Client) -> String {
    let served = step("find who served the reviews", {
        client.find(Locator::Css("section.reviews dl.served dd"))
    })
    .await;
    step("read who served the reviews", served.text()).await
}

/// The `user` cookie the browser holds for the page, if any.
async fn user_cookie(client: &Client) -> Option<String> {
    step("read the cookies", client.get_all_cookies())
        .await
        .into_iter()
        .find(|c| c.name() == "user")
        .map(|c| c.value().to_owned())
}

/// What an anonymous user must see: the book, the sign-in form, reviews v1 without stars.
async fn assert_anonymous_page(client: &Client, when: &str) {
    step(
        "wait for the sign-in form",
        client
            .wait()
            .at_most(STEP)
            .for_element(Locator::Css("form.login")),
    )
    .await;
    let title = step("read the title", client.title()).await;
    assert_eq!(title, "Simple Bookstore App", "{when}");
    let book = step("find the book", client.find(Locator::Css("h3.title"))).await;
    let book = step("read the book's title", book.text()).await;
    assert_eq!(book, "The Comedy of Errors", "{when}");
    let stars = stars(client).await;
    assert!(
        stars.is_empty(),
        "{when}: no stars for reviews v1: {stars:?}"
    );
    let source = step("read the page", client.source()).await;
    assert!(!source.contains('★'), "{when}: {source}");
    let served = served_by(client).await;
    assert!(served.contains("reviews-v1"), "{when}: served by {served}");
    assert_eq!(user_cookie(client).await, None, "{when}");
}

/// The walk through the page: anonymous, sign in as jason, sign out.
async fn walk(client: Client, gateway: SocketAddr) {
    let page = format!("http://{gateway}/productpage");
    step("open the product page", client.goto(&page)).await;
    assert_anonymous_page(&client, "anonymous").await;

    // Sign in with the page's own form, as a user would.
    let name = step(
        "find the user name field",
        client.find(Locator::Css("form.login input[name=username]")),
    )
    .await;
    step("type the user name", name.send_keys("jason")).await;
    let password = step(
        "find the password field",
        client.find(Locator::Css("form.login input[name=passwd]")),
    )
    .await;
    step("type a password", password.send_keys("password")).await;
    let sign_in = step(
        "find the Sign in button",
        client.find(Locator::Css("form.login button[type=submit]")),
    )
    .await;
    let label = step("read the button", sign_in.text()).await;
    assert_eq!(label, "Sign in");
    step("click Sign in", sign_in.click()).await;

    // The login redirects to the page, now for jason.
    let user = step(
        "wait for the signed-in page",
        client
            .wait()
            .at_most(STEP)
            .for_element(Locator::Css("nav p.user")),
    )
    .await;
    let text = step("read who is signed in", user.text()).await;
    assert!(text.contains("signed in as jason"), "{text}");
    let url = step("read the URL", client.current_url()).await;
    assert_eq!(url.path(), "/productpage");
    assert_eq!(user_cookie(&client).await.as_deref(), Some("jason"));
    let stars = stars(&client).await;
    assert!(!stars.is_empty(), "reviews v2 shows stars");
    for (text, color) in &stars {
        assert!(text.contains('★'), "{stars:?}");
        assert_eq!(color, "rgb(0, 0, 0)", "black stars: {stars:?}");
    }
    let served = served_by(&client).await;
    assert!(served.contains("reviews-v2"), "jason: served by {served}");

    // Sign out: anonymous again.
    let sign_out = step(
        "find Sign out",
        client.find(Locator::Css("nav p.user a[href='/logout']")),
    )
    .await;
    step("click Sign out", sign_out.click()).await;
    assert_anonymous_page(&client, "signed out").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jason_signs_in_with_a_real_browser_and_sees_black_stars() {
    let Some(browser) = find_browser() else {
        return;
    };
    let demo = start_demo().await;
    let gateway = demo.urls().gateway;
    let driver = Chromedriver::start(&browser).await;
    let client = driver.session(&browser).await;

    // The walk runs as a task so that a failed assertion still closes the session (and so
    // the browser) before chromedriver is killed; the panic goes on after that, and the
    // driver's guard, dropped while it unwinds, shows chromedriver's log.
    let walked = tokio::spawn(walk(client.clone(), gateway)).await;
    let closed = tokio::time::timeout(STEP, client.close()).await;
    demo.shutdown().await;
    if let Err(e) = walked {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the walk did not finish: {e}"),
        }
    }
    match closed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("close the browser session: {e:?}"),
        Err(_) => panic!("close the browser session: no answer within {STEP:?}"),
    }
    drop(driver);
}
