//! Route registration and the OpenAPI document from one list.
//!
//! A route is registered as a [`Documented`] operation — a handler together with what its
//! `#[utoipa::path]` says: method, full path, parameters, bodies, responses, security — built by
//! [`op!`]. Each module's `configure` hands its operations to [`Routes`], in matching order, and
//! `Routes` registers each on actix *and* records it in a [`RouteLog`]; the OpenAPI document is
//! assembled from that log, so a route cannot be served without
//! being documented, nor documented without being served.
//!
//! The documentation also decides how the route is guarded. Every route is an actix resource of
//! its own wrapped by [`crate::gate::gate`], with a [`RouteInfo`]: its template and, per method,
//! what the gate asks of the request:
//!
//! - an operation whose `security` is the explicit empty requirement (`security(())`) is public
//!   and takes no credential;
//! - an operation marked `extensions(("x-tessera-access" = json!("own")))` checks a secret of its
//!   own (a fingerprint, a signature over its body): the gate takes no credential either;
//! - any other operation needs a credential allowing read access for GET and write access for
//!   every other method, unless `x-tessera-access` names another (`read`, `write`, `account`,
//!   `meter`). Its documented `security` is the default one, stamped once by the document.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{guard, web, FromRequest, Handler, Responder};
use tessera_domain::actor::Access;

use crate::gate::{RouteInfo, RouteMode};
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

/// The extension naming what an operation's credential must allow (see the module doc).
pub const ACCESS_EXTENSION: &str = "x-tessera-access";

/// A handler with its documentation (see [`op!`]).
pub struct Documented<F, Args> {
    handler: F,
    /// The full path the documentation gives (`/api/v1/users/{user}`).
    path: String,
    method: HttpMethod,
    operation: Operation,
    schemas: Vec<(String, RefOr<Schema>)>,
    _args: PhantomData<fn(Args)>,
}

impl<F, Args> Documented<F, Args>
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    /// The operation `P` (the struct `#[utoipa::path]` generates next to `handler`) served by
    /// `handler`. The schema references come from utoipa's own (hidden) trait, as its
    /// framework integrations collect them.
    pub fn of<P>(handler: F) -> Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences + for<'t> utoipa::__dev::Tags<'t>,
    {
        let mut schemas = Vec::new();
        P::schemas(&mut schemas);
        let mut operation = P::operation();
        let tags: Vec<String> = P::tags().into_iter().map(str::to_owned).collect();
        if !tags.is_empty() {
            operation.tags = Some(tags);
        }
        Self {
            handler,
            path: P::path(),
            // Every handler here serves one method.
            method: P::methods().into_iter().next().unwrap_or(HttpMethod::Get),
            operation,
            schemas,
            _args: PhantomData,
        }
    }

    fn actix_method(&self) -> Method {
        match self.method {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Delete => Method::DELETE,
            HttpMethod::Options => Method::OPTIONS,
            HttpMethod::Head => Method::HEAD,
            HttpMethod::Patch => Method::PATCH,
            HttpMethod::Trace => Method::TRACE,
        }
    }

    /// What the gate asks of this operation's requests (see the module doc).
    fn mode(&self) -> RouteMode {
        let declared = self
            .operation
            .extensions
            .as_ref()
            .and_then(|e| e.get(ACCESS_EXTENSION))
            .and_then(serde_json::Value::as_str);
        let access = match declared {
            Some("own") => return RouteMode::Open,
            Some("read") => Access::Read,
            Some("write") => Access::Write,
            Some("account") => Access::Account,
            Some("meter") => Access::Meter,
            Some("deposit") => Access::Deposit,
            _ if is_public(&self.operation) => return RouteMode::Open,
            _ => Access::for_method(matches!(self.method, HttpMethod::Get | HttpMethod::Head)),
        };
        RouteMode::Authenticated(access)
    }
}

/// Whether an operation opted out of the default security with the empty requirement.
pub fn is_public(operation: &Operation) -> bool {
    operation.security.as_ref().is_some_and(|requirements| {
        requirements.iter().all(|r| {
            serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
        })
    })
}

/// `op!(handler)`: a handler of the current module with the documentation of its
/// `#[utoipa::path]` (the struct `__path_handler` the attribute generates beside it).
macro_rules! op {
    ($handler:ident) => {
        ::paste::paste! {
            $crate::routes::Documented::of::<[<__path_ $handler>]>($handler)
        }
    };
}
pub(crate) use op;

/// One registered operation: an HTTP method (`GET`) on a full path template
/// (`/api/v1/users/{user}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegisteredRoute {
    pub method: String,
    pub path: String,
}

/// An operation as registered, for the document.
pub struct LoggedOperation {
    pub path: String,
    pub method: HttpMethod,
    pub operation: Operation,
    pub schemas: Vec<(String, RefOr<Schema>)>,
}

/// The operations registered so far, in registration order.
#[derive(Default)]
pub struct RouteLog {
    routes: RefCell<Vec<RegisteredRoute>>,
    operations: RefCell<Vec<LoggedOperation>>,
}

impl RouteLog {
    /// `(method, actix template)` of every route, as actix serves it.
    pub fn routes(&self) -> Vec<RegisteredRoute> {
        self.routes.borrow().clone()
    }

    /// Every operation with its documentation, in registration order.
    pub fn into_operations(self) -> Vec<LoggedOperation> {
        self.operations.into_inner()
    }
}

/// Where operations are being registered: the scope's prefix and the log.
#[derive(Clone)]
struct Registrar<'a> {
    prefix: String,
    log: &'a RouteLog,
}

impl Registrar<'_> {
    /// The path actix matches inside the current scope: the documented path without the
    /// scope's prefix.
    fn relative(&self, documented: &str) -> String {
        match documented.strip_prefix(self.prefix.as_str()) {
            Some(rest) if !rest.is_empty() => rest.to_owned(),
            // A wiring mistake caught at start-up by every test: an operation registered in a
            // scope its documented path is not under.
            _ => panic!(
                "operation {documented} is registered under the scope {}",
                self.prefix
            ),
        }
    }

    fn record<F, Args>(&self, actix_path: &str, op: Documented<F, Args>) -> (Method, RouteMode, F)
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let method = op.actix_method();
        let mode = op.mode();
        self.log.routes.borrow_mut().push(RegisteredRoute {
            method: method.as_str().to_owned(),
            path: format!("{}{actix_path}", self.prefix),
        });
        self.log.operations.borrow_mut().push(LoggedOperation {
            path: op.path,
            method: op.method,
            operation: op.operation,
            schemas: op.schemas,
        });
        (method, mode, op.handler)
    }
}

/// Registers documented operations on an actix `ServiceConfig` under a path prefix.
pub struct Routes<'a> {
    config: &'a mut web::ServiceConfig,
    at: Registrar<'a>,
}

impl<'a> Routes<'a> {
    pub fn new(config: &'a mut web::ServiceConfig, log: &'a RouteLog) -> Self {
        Self {
            config,
            at: Registrar {
                prefix: String::new(),
                log,
            },
        }
    }

    /// One operation as a resource of its own; its method is also a guard on the resource, so
    /// other methods fall through to later resources matching the same path.
    pub fn op<F, Args>(&mut self, op: Documented<F, Args>) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let path = self.at.relative(&op.path);
        self.op_at(&path, op)
    }

    /// [`Routes::op`] at an actix path that differs from the documented one only in a
    /// parameter's pattern (`/docs/{file:.*}` for `/docs/{file}`).
    pub fn op_at<F, Args>(&mut self, actix_path: &str, op: Documented<F, Args>) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let template: Rc<str> = format!("{}{}", self.at.prefix, self.at.relative(&op.path)).into();
        let (method, mode, handler) = self.at.record(actix_path, op);
        let info = RouteInfo {
            template,
            modes: vec![(method.clone(), mode)],
        };
        let resource = web::resource(actix_path)
            .guard(guard::Method(method.clone()))
            .route(web::route().method(method).to(handler));
        self.config.service(gated(resource, info));
        self
    }

    /// Several operations on one path as one resource (a method it lacks is a 405 from it),
    /// with resource data for their handlers and the gate (`SigningPurpose`, …).
    pub fn resource(
        &mut self,
        path: &str,
        build: impl FnOnce(MethodRoutes<'a>) -> MethodRoutes<'a>,
    ) -> &mut Self {
        let template: Rc<str> = format!("{}{path}", self.at.prefix).into();
        let built = build(MethodRoutes {
            at: self.at.clone(),
            path: path.to_owned(),
            resource: web::resource(path),
            modes: Vec::new(),
        });
        let (resource, modes) = (built.resource, built.modes);
        let info = RouteInfo { template, modes };
        self.config.service(gated(resource, info));
        self
    }

    /// A `web::scope(prefix)` whose operations are registered under it.
    pub fn scope(&mut self, prefix: &str, build: impl FnOnce(&mut Routes<'_>)) -> &mut Self {
        self.scope_with(prefix, |scope| scope, build)
    }

    /// [`Routes::scope`] with the scope itself customised first (`.wrap(..)`, `.app_data(..)`).
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
        let at = Registrar {
            prefix: format!("{}{prefix}", self.at.prefix),
            log: self.at.log,
        };
        // `Scope::configure` runs the closure at once, so the log can be borrowed into it.
        let scope = customize(web::scope(prefix)).configure(|config| {
            build(&mut Routes { config, at });
        });
        self.config.service(scope);
        self
    }

    /// The underlying config, for what is not a route (app data, the default service).
    pub fn config(&mut self) -> &mut web::ServiceConfig {
        self.config
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

/// The operations of one resource.
pub struct MethodRoutes<'a> {
    at: Registrar<'a>,
    path: String,
    resource: actix_web::Resource,
    modes: Vec<(Method, RouteMode)>,
}

impl MethodRoutes<'_> {
    /// Data for this resource's handlers and its gate, like `Resource::app_data`.
    pub fn app_data<U: 'static>(mut self, data: U) -> Self {
        self.resource = self.resource.app_data(data);
        self
    }

    /// One operation of the resource; its documented path must be the resource's.
    pub fn op<F, Args>(mut self, op: Documented<F, Args>) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let relative = self.at.relative(&op.path);
        if relative != self.path {
            panic!("operation {} is not on the resource {}", op.path, self.path);
        }
        let (method, mode, handler) = self.at.record(&self.path, op);
        self.resource = self
            .resource
            .route(web::route().method(method.clone()).to(handler));
        self.modes.push((method, mode));
        self
    }
}
