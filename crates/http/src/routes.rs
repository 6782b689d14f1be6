//! Route registration that remembers what it registered.
//!
//! Every module's `configure` takes a [`Routes`] instead of actix's `ServiceConfig`. Each call
//! registers the route on actix exactly as `ServiceConfig::route` / `ServiceConfig::service`
//! would, and also records `(method, full path template)` — scope prefixes included — in a
//! [`RouteLog`]. [`crate::registered_routes`] replays the real registration into a log, and the
//! route-coverage test in [`crate::openapi`] compares that log with the operations of the OpenAPI
//! document in both directions. A route cannot be registered without being recorded, so a route
//! missing from the document fails the test.

use std::cell::RefCell;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Responder};

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
}

impl<'a> Routes<'a> {
    pub fn new(config: &'a mut web::ServiceConfig, log: &'a RouteLog) -> Self {
        Self {
            config,
            prefix: String::new(),
            log,
        }
    }

    /// A single-method route, like `ServiceConfig::route`: the method is also a guard on the
    /// resource, so other methods fall through to later resources matching the same path.
    pub fn route<F, Args>(&mut self, method: Method, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.log.record(&method, format!("{}{path}", self.prefix));
        self.config
            .route(path, web::route().method(method).to(handler));
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
        });
        for method in built.methods {
            self.log.record(&method, format!("{}{path}", self.prefix));
        }
        self.config.service(built.resource);
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
        // `Scope::configure` runs the closure at once, so the log can be borrowed into it.
        let scope = customize(web::scope(prefix)).configure(|config| {
            build(&mut Routes {
                config,
                prefix: full_prefix,
                log,
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
    methods: Vec<Method>,
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
        self.methods.push(method);
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
