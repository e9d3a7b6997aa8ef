"""`/openapi.json` and `/docs`: generated from the endpoint table, served without a key."""

from __future__ import annotations

from service.gateway.endpoints import Access
from service.gateway.routes import ENDPOINT_TABLE
from tests.support.api import Client


async def test_the_openapi_document_lists_every_endpoint_with_its_access_rule(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert "X-RateLimit-Limit" not in response.headers
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    for endpoint in ENDPOINT_TABLE:
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        assert operation["operationId"] == endpoint.operation_id
        if endpoint.access is Access.KEY:
            assert operation["security"] == [{"apiKey": []}]
            assert f"`{endpoint.scope}`" in operation["description"]
            assert {"401", "429"} <= set(operation["responses"])
        elif endpoint.access is Access.ADMIN:
            assert operation["security"] == [{"adminToken": []}]
        else:
            assert "security" not in operation
        if endpoint.body is not None:
            schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert schema_ref.rsplit("/", 1)[1] in document["components"]["schemas"]


async def test_the_docs_page_is_html_naming_every_path(client: Client) -> None:
    response = await client.get("/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert "/openapi.json" in page
    for endpoint in ENDPOINT_TABLE:
        assert endpoint.path in page


async def test_the_docs_page_renders_the_descriptions_markdown(client: Client) -> None:
    page = await (await client.get("/docs")).text()
    assert "<strong>Authentication.</strong>" in page
    assert "<code>Authorization: Bearer &lt;key&gt;</code>" in page
    assert "**" not in page
    assert "`" not in page
