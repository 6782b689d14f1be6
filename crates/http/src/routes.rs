//! Route registration that remembers what it registered.
//!
//! Every module's `configure` takes a [`Routes`] instead of actix's `ServiceConfig`. Each call
//! registers the route on actix exactly as `ServiceConfig::route` / `ServiceConfig::service`
//! would, and also records `(method, full path template)` — scope prefixes included — in a
//! [`RouteLog`]. [`crate::registered_routes`] replays the real registration into a log, and the
//! route-coverage test in [`crate::openapi`] compares that log with the operations of the OpenAPI
//! document in both directions. A route cannot be registered without being recorded, so a route
//! missing from the document fails the test.
//!
//! Every route is also its own actix resource wrapped by [`crate::gate::gate`], with a
//! [`RouteInfo`] saying its template and what its credential must allow: so no route can be
//! reached without passing the gate, which authenticates once, applies rate limits by the
//! route's template and refuses a credential the operation's [`Access`] does not allow. Routes
//! are authenticated unless registered inside [`Routes::open`] (they take no credential, or
//! check their own, as logins do).

use std::cell::RefCell;
use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{guard, web, FromRequest, Handler, Responder};
use tessera_domain::actor::Access;

/// What the gate asks of a request to one route and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMode {
    /// No credential is taken (logins, public reads, routes that check their own secret).
    Open,
    /// A credential is required and must allow this access.
    Authenticated(Access),
}

/// A resource's template and, per method, what the gate asks; resource data read by the gate.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    /// The full template (`/api/v1/users/{user}`): rate-limit rules and metrics match it.
    pub template: Rc<str>,
    pub modes: Vec<(Method, RouteMode)>,
}

impl RouteInfo {
    pub fn mode(&self, method: &Method) -> Option<RouteMode> {
        self.modes
            .iter()
            .find(|(m, _)| m == method || (*method == Method::HEAD && m == Method::GET))
            .map(|(_, mode)| *mode)
    }
}

/// How routes registered next are guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guarding {
    Open,
    /// Authenticated, with the access of the method unless one is given.
    Authenticated(Option<Access>),
}

impl Guarding {
    fn mode(self, method: &Method) -> RouteMode {
        match self {
            Self::Open => RouteMode::Open,
            Self::Authenticated(Some(access)) => RouteMode::Authenticated(access),
            Self::Authenticated(None) => RouteMode::Authenticated(Access::for_method(matches!(
                *method,
                Method::GET | Method::HEAD | Method::OPTIONS
            ))),
        }
    }
}

fn gated(
    resource: actix_web::Resource,
    info: RouteInfo,
) -> impl actix_web::dev::HttpServiceFactory {
    resource
        .app_data(info)
        .wrap(actix_web::middleware::from_fn(crate::gate::gate))
}

/// One registered operation: an HTTP method (`GET`) on a full path template
/// (`/api/v1/users/{user}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegisteredRoute {
    pub method: String,
    pub path: String,
}

/// The operations registered so far, in registration order.
#[derive(Debug, Default)]
pub struct RouteLog(RefCell<Vec<RegisteredRoute>>);

impl RouteLog {
    pub fn routes(&self) -> Vec<RegisteredRoute> {
        self.0.borrow().clone()
    }

    fn record(&self, method: &Method, path: String) {
        self.0.borrow_mut().push(RegisteredRoute {
            method: method.as_str().to_owned(),
            path,
        });
    }
}

/// Registers routes on an actix `ServiceConfig` under a path prefix, recording each one.
pub struct Routes<'a> {
    config: &'a mut web::ServiceConfig,
    prefix: String,
    log: &'a RouteLog,
    guarding: Guarding,
}

impl<'a> Routes<'a> {
    pub fn new(config: &'a mut web::ServiceConfig, log: &'a RouteLog) -> Self {
        Self {
            config,
            prefix: String::new(),
            log,
            guarding: Guarding::Authenticated(None),
        }
    }

    fn with_guarding(
        &mut self,
        guarding: Guarding,
        build: impl FnOnce(&mut Routes<'_>),
    ) -> &mut Self {
        let saved = self.guarding;
        self.guarding = guarding;
        build(self);
        self.guarding = saved;
        self
    }

    /// Routes that take no credential from the gate: public reads, logins, and routes that
    /// check a secret of their own (a fingerprint, a signature over their body).
    pub fn open(&mut self, build: impl FnOnce(&mut Routes<'_>)) -> &mut Self {
        self.with_guarding(Guarding::Open, build)
    }

    /// Authenticated routes whose credential must allow `access` whatever their method (a GET
    /// that changes state needs `Write`; recording usage needs `Meter`).
    pub fn requiring(&mut self, access: Access, build: impl FnOnce(&mut Routes<'_>)) -> &mut Self {
        self.with_guarding(Guarding::Authenticated(Some(access)), build)
    }

    /// A single-method route, like `ServiceConfig::route`: the method is also a guard on the
    /// resource, so other methods fall through to later resources matching the same path.
    pub fn route<F, Args>(&mut self, method: Method, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let template = format!("{}{path}", self.prefix);
        self.log.record(&method, template.clone());
        let info = RouteInfo {
            template: template.into(),
            modes: vec![(method.clone(), self.guarding.mode(&method))],
        };
        let resource = web::resource(path)
            .guard(guard::Method(method.clone()))
            .route(web::route().method(method).to(handler));
        self.config.service(gated(resource, info));
        self
    }

    pub fn get<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::GET, path, handler)
    }

    pub fn post<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::POST, path, handler)
    }

    pub fn put<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::PUT, path, handler)
    }

    pub fn delete<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::DELETE, path, handler)
    }

    /// One path with several methods, like `web::resource(path).route(..)…`: a method the
    /// resource lacks is a 405 from it, not a fall-through.
    pub fn resource(
        &mut self,
        path: &str,
        build: impl FnOnce(MethodRoutes) -> MethodRoutes,
    ) -> &mut Self {
        let built = build(MethodRoutes {
            resource: web::resource(path),
            methods: Vec::new(),
            guarding: self.guarding,
        });
        let template = format!("{}{path}", self.prefix);
        for (method, _) in &built.methods {
            self.log.record(method, template.clone());
        }
        let info = RouteInfo {
            template: template.into(),
            modes: built.methods,
        };
        self.config.service(gated(built.resource, info));
        self
    }

    /// A `web::scope(prefix)` whose routes are recorded with the prefix.
    pub fn scope(&mut self, prefix: &str, build: impl FnOnce(&mut Routes<'_>)) -> &mut Self {
        self.scope_with(prefix, |scope| scope, build)
    }

    /// [`Routes::scope`] with the scope itself customised first (`.wrap(..)`, `.app_data(..)`):
    /// `customize` receives the bare `web::scope(prefix)` and returns it configured; the routes
    /// `build` registers inside are recorded as with [`Routes::scope`].
    pub fn scope_with<T, B>(
        &mut self,
        prefix: &str,
        customize: impl FnOnce(actix_web::Scope) -> actix_web::Scope<T>,
        build: impl FnOnce(&mut Routes<'_>),
    ) -> &mut Self
    where
        T: ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: MessageBody + 'static,
    {
        let full_prefix = format!("{}{prefix}", self.prefix);
        let log = self.log;
        let guarding = self.guarding;
        // `Scope::configure` runs the closure at once, so the log can be borrowed into it.
        let scope = customize(web::scope(prefix)).configure(|config| {
            build(&mut Routes {
                config,
                prefix: full_prefix,
                log,
                guarding,
            });
        });
        self.config.service(scope);
        self
    }

    /// The underlying config, for what is not a route (app data, the default service).
    pub fn config(&mut self) -> &mut web::ServiceConfig {
        self.config
    }
}

/// The methods of one resource.
pub struct MethodRoutes {
    resource: actix_web::Resource,
    methods: Vec<(Method, RouteMode)>,
    guarding: Guarding,
}

impl MethodRoutes {
    /// Data for this resource's handlers only, like `Resource::app_data`.
    pub fn app_data<U: 'static>(mut self, data: U) -> Self {
        self.resource = self.resource.app_data(data);
        self
    }

    pub fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self
            .resource
            .route(web::route().method(method.clone()).to(handler));
        let mode = self.guarding.mode(&method);
        self.methods.push((method, mode));
        self
    }

    /// A method of this resource that takes no credential from the gate (see
    /// [`Routes::open`]).
    pub fn open<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let saved = self.guarding;
        self.guarding = Guarding::Open;
        self = self.on(method, handler);
        self.guarding = saved;
        self
    }

    pub fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::GET, handler)
    }

    pub fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::POST, handler)
    }

    pub fn put<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::PUT, handler)
    }

    pub fn patch<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::PATCH, handler)
    }

    pub fn delete<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::DELETE, handler)
    }
}
