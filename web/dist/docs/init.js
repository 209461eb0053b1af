// Swagger UI on the gateway's own OpenAPI document (vendored from npm swagger-ui-dist).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
});
