"""Outbound carrier gateways of a tenant."""

from controller.domain import Gateway
from controller.stores.children import TenantChildStore

store = TenantChildStore("gateways", Gateway, "name")
