import { describe, expect, test } from "bun:test";
import { type SseEvent, SseParser } from "../../lib/client/sse.ts";

/** Feeds `chunks` to a fresh parser and returns every event dispatched. */
const parse = (chunks: string[], lastEventId?: string) => {
  const parser = new SseParser(lastEventId);
  const events: SseEvent[] = chunks.flatMap((chunk) => parser.push(chunk));
  return { events, parser };
};

describe("the SSE parser", () => {
  test("the gateway's frames: comments skipped, each alert with its event name, data and id", () => {
    const { events } = parse([': connected\n\nid: c1\nevent: alert\ndata: {"a":1}\n\n: heartbeat\n\nid: c2\nevent: alert\ndata: {"a":2}\n\n']);
    expect(events).toEqual([
      { event: "alert", data: '{"a":1}', id: "c1" },
      { event: "alert", data: '{"a":2}', id: "c2" },
    ]);
  });

  test("any split of the bytes into chunks gives the same events", () => {
    const text = 'id: c1\r\nevent: alert\r\ndata: {"a":1}\r\n\r\nid: c2\revent: alert\rdata: x\r\rid: c3\nevent: shutdown\ndata: {}\n\n';
    const whole = parse([text]).events;
    expect(whole.map((e) => e.id)).toEqual(["c1", "c2", "c3"]);
    for (let cut = 0; cut <= text.length; cut++) expect(parse([text.slice(0, cut), text.slice(cut)]).events).toEqual(whole);
    expect(parse([...text]).events).toEqual(whole);
  });

  test("a CRLF split between chunks is one line end, not two", () => {
    const { events } = parse(["data: a\r", "\ndata: b\r", "\n\r", "\n"]);
    expect(events).toEqual([{ event: "message", data: "a\nb", id: undefined }]);
  });

  test("an event cut off by the end of the stream is never dispatched", () => {
    const { events } = parse(['id: c1\nevent: alert\ndata: {"a":1}\n\nid: c2\nevent: alert\ndata: {"a":']);
    expect(events.map((e) => e.id)).toEqual(["c1"]);
  });

  test("field rules: one leading space dropped, no colon means an empty value, unknown fields and ids with NUL ignored", () => {
    const { events, parser } = parse(["data:no space\ndata:  two spaces\ndata\nfoo: bar\nid: bad\0id\nretry: 250\nretry: soon\n\n"], "before");
    expect(events).toEqual([{ event: "message", data: "no space\n two spaces\n", id: "before" }]);
    expect(parser.retryMs).toBe(250);
  });

  test("the last event id carries over to later events without one; an event without data is not dispatched", () => {
    const { events } = parse(["id: c7\nevent: alert\n\nevent: alert\ndata: x\n\n"]);
    expect(events).toEqual([{ event: "alert", data: "x", id: "c7" }]);
  });
});
