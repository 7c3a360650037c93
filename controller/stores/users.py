"""Users (SIP extensions) of a tenant."""

from controller.domain import User
from controller.stores.children import TenantChildStore

store = TenantChildStore("users", User, "extension")
