"""Reading a posted form on the staff pages: refused (403 page) unless it carries the session's CSRF token.

Every template form includes `{{ csrf_field() }}`, the hidden `csrf_token` input (a Jinja global set up in
`service.ui.rendering`). SameSite=Strict cookies already keep other sites' forms from arriving signed in; the
token is the second lock.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from service.errors import Code, HandoverError
from service.ui.sessions import StaffSession

MAX_FORM_BYTES = 64 * 1024


async def read_form(request: web.Request, session: StaffSession) -> MultiDictProxy[str]:
    """The form's text fields, once its `csrf_token` matches the session's; otherwise the 403 page."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise HandoverError(Code.PAYLOAD_TOO_LARGE, "The form is too large")
    posted = await request.post()
    token = posted.get("csrf_token")
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
        raise HandoverError(
            Code.FORBIDDEN, "This form has expired or did not come from this page; reload and try again"
        )
    return MultiDictProxy(MultiDict((name, value) for name, value in posted.items() if isinstance(value, str)))
