"""The sockets of the fleet-wide pages: the machine list (one page of one filter) and a bulk
action's summary."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from machines import live
from machines.models import BulkAction
from machines.services import rights
from machines.services.listing import MachineFilterForm
from machines.sockets.base import LiveConsumer


class MachineListConsumer(LiveConsumer):
    """One page of the machine list, for the filter in the socket's query string: changes
    of the rows it shows, rows that join its view while its page has room, and the counts."""

    def _allowed(self, user) -> bool:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.filter = MachineFilterForm({k: v[-1] for k, v in query.items()}, user=user)
        return super()._allowed(user)

    async def machine_counts(self, event: dict) -> None:
        # The fleet's counts, or (for a user who sees some machines only) their own.
        if rights.sees_all(self.filter.user):
            await self._forward(event)
        else:
            before = self.counts_sent
            html = await database_sync_to_async(self._counts)()
            if html != before:  # only when theirs changed: nothing said of the others
                await self.send(text_data=html)

    def _counts(self) -> str:
        html = live.state_counts_html(machines=rights.visible_machines(self.filter.user))
        self.counts_sent = html
        return html

    def groups_for(self) -> list[str]:
        return [live.MACHINES]

    def snapshot(self) -> list[str]:
        page = self.filter.get_page()
        machines = page.object_list
        self.rows_shown = {f"machine-{m.pk}" for m in machines}
        # Only the last page takes machines that join the view (a new one, a changed state).
        self.room = 0 if page.has_next() else page.paginator.per_page - len(machines)
        rows = self.render("machines/list.html#machine_rows_oob", {"machines": machines})
        return [rows, self._counts()]

    def wants(self, event: dict) -> bool:
        return self.filter.matches(event["fields"])

    machine_changed = LiveConsumer._forward_row


class BulkConsumer(LiveConsumer):
    """A bulk action's summary: its counts and each operation's line as they change."""

    bulk_changed = LiveConsumer._forward

    def object_exists(self) -> bool:
        self.bulk_id = self.scope["url_route"]["kwargs"]["bulk_id"]
        return rights.visible_bulks(self.user).filter(pk=self.bulk_id).exists()

    def groups_for(self) -> list[str]:
        return [live.bulk_group(self.bulk_id)]

    def snapshot(self) -> list[str]:
        bulk = BulkAction.objects.get(pk=self.bulk_id)
        ops = list(bulk.operations.order_by("machine_name"))
        summary = {"bulk": bulk, "counts": bulk.counts(), "oob": True}
        return [
            self.render("machines/bulk.html#bulk_ops_oob", {"operations": ops}),
            self.render("machines/bulk.html#bulk_summary", summary),
        ]
