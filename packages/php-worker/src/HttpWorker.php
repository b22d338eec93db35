<?php

declare(strict_types=1);

namespace Warmpool;

use Warmpool\Http\BadRequestException;
use Warmpool\Http\Proto;
use Warmpool\Http\Request;

/**
 * HTTP on top of Worker: decodes each request context (JSON or protobuf http.v1, PROTOCOL.md §5)
 * into a Request, and answers in the codec the request came in (§6).
 *
 *     $http = HttpWorker::create();
 *     while ($request = $http->waitRequest()) {
 *         $http->respond(200, 'Hello ' . $request->path(), ['Content-Type' => 'text/plain']);
 *     }
 *
 * One answer per request: respond() (or a stream ending with endOfStream), respondStream(), error()
 * or stop(). A second answer would desync the protocol (§3.4), so once a request is answered,
 * respond() throws a LogicException and error() only writes its message to STDERR. That makes the
 * usual `catch (\Throwable $e) { $http->error((string)$e); }` safe even after a stream broke.
 */
final class HttpWorker
{
    /** Frame::CODEC_JSON or Frame::CODEC_PROTO: the codec of the current request and its reply */
    private int $codec = Frame::CODEC_JSON;
    private bool $answered = true;

    public function __construct(public readonly Worker $worker)
    {
    }

    /** Connects to the server as the environment says (see Relay::fromEnvironment()). */
    public static function create(?bool $interceptOutput = null): self
    {
        return new self(Worker::create($interceptOutput));
    }

    /**
     * The next request; null when the server asks the worker to stop (end the loop and exit).
     *
     * @throws BadRequestException when the context cannot be decoded: answer it with respond(400)
     */
    public function waitRequest(): ?Request
    {
        $payload = $this->worker->waitPayload();
        if ($payload === null || ($payload->context === '' && $payload->body === '')) {
            $this->answered = true;
            return null; // an empty request means "terminate" for RoadRunner's PHP library too
        }
        $this->codec = $payload->codec;
        $this->answered = false;
        return self::decodeRequest($payload);
    }

    /** Frame::CODEC_PROTO or Frame::CODEC_JSON: how the current request arrived, and how replies go. */
    public function codec(): int
    {
        return $this->codec;
    }

    /**
     * Sends the response. With $endOfStream false the frame is one part of a stream (a 103 Early
     * Hints head, or a chunk) and more respond() calls must follow, the last with $endOfStream true;
     * every frame then repeats the status and headers, as RoadRunner's PHP 3.5 library does.
     *
     * @param array<string, string|list<string>> $headers a string value is one value
     * @throws StreamStoppedException during a stream the server cancelled; the stream is already
     *         ended (endCancelledStream()), so just stop producing and wait for the next request
     */
    public function respond(int $status, string $body = '', array $headers = [], bool $endOfStream = true): void
    {
        $this->assertOpen();
        try {
            $this->send($this->encodeContext($status, self::normalizeHeaders($headers)), $body, $endOfStream);
        } catch (StreamStoppedException $stop) {
            $this->endCancelled();
            throw $stop;
        }
        if ($endOfStream) {
            $this->answered = true;
        }
    }

    /**
     * Streams the response: each non-empty chunk goes in its own STREAM frame as soon as it is produced,
     * then a final frame ends the stream (its body is a Generator's return value, usually empty). The
     * status and headers travel on the first frame only; later frames have an empty context, as with
     * RoadRunner's PHP 3.4 library. No chunk at all gives one ordinary, unstreamed response.
     *
     * When the server cancels the stream (the client went away), iteration stops, a Generator gets
     * the StreamStoppedException thrown in at its current `yield` (to clean up: catch it, or use
     * finally), the stream is ended for the server, and false is returned.
     *
     * If producing a chunk throws before anything was sent, the exception propagates and the request
     * is still unanswered (respond with an error). If it throws mid-stream, the status is already out:
     * an error frame ends the stream (the server aborts the response) and the exception propagates.
     *
     * @param iterable<string|\Stringable> $chunks
     * @param array<string, string|list<string>> $headers
     * @return bool true when the whole stream was sent, false when the server cancelled it
     */
    public function respondStream(int $status, iterable $chunks, array $headers = []): bool
    {
        $this->assertOpen();
        $context = $this->encodeContext($status, self::normalizeHeaders($headers));
        $started = false;
        try {
            foreach ($chunks as $chunk) {
                $chunk = (string)$chunk;
                if ($chunk === '') {
                    continue;
                }
                $this->send($started ? '' : $context, $chunk, false);
                $started = true;
            }
            $tail = $chunks instanceof \Generator ? (string)$chunks->getReturn() : '';
            $this->send($started ? '' : $context, $tail, true);
        } catch (StreamStoppedException $stop) {
            if ($chunks instanceof \Generator && $chunks->valid()) {
                try {
                    $chunks->throw($stop);
                } catch (StreamStoppedException) {
                    // the generator did not catch it: it has finished, its finally blocks ran
                } catch (\Throwable $e) {
                    \fwrite(\STDERR, "warmpool: a stream generator failed while cancelled: {$e}\n");
                }
            }
            $this->endCancelled();
            return false;
        } catch (\Throwable $e) {
            if ($started) {
                $this->worker->error((string)$e);
                $this->answered = true;
            }
            throw $e;
        }
        $this->answered = true;
        return true;
    }

    /** Ends the current request with a worker error: the server answers 500 and keeps this worker. */
    public function error(string $message): void
    {
        if ($this->answered) {
            \fwrite(\STDERR, "warmpool: not sent, the request was already answered: {$message}\n");
            return;
        }
        $this->worker->error($message);
        $this->answered = true;
    }

    /** Asks the server to retire this worker; it re-runs the current request on another worker. */
    public function stop(): void
    {
        $this->worker->stop();
        $this->answered = true;
    }

    private function send(string $context, string $body, bool $endOfStream): void
    {
        $this->worker->respond(new Payload($context, $body, $this->codec), $endOfStream);
    }

    private function endCancelled(): void
    {
        $this->worker->endCancelledStream();
        $this->answered = true;
    }

    private function assertOpen(): void
    {
        if ($this->answered) {
            throw new \LogicException('this request was already answered (or none is in progress): one answer per request');
        }
    }

    /** @param array<string, list<string>> $headers */
    private function encodeContext(int $status, array $headers): string
    {
        if ($this->codec === Frame::CODEC_PROTO) {
            return Proto::encodeResponse($status, $headers);
        }
        // (object): no headers must encode as {} (never []), numeric names stay keys
        return \json_encode(['status' => $status, 'headers' => (object)$headers], \JSON_THROW_ON_ERROR);
    }

    /**
     * @param array<array-key, mixed> $headers
     * @return array<string, list<string>>
     */
    private static function normalizeHeaders(array $headers): array
    {
        $out = [];
        foreach ($headers as $name => $value) {
            if ($value === null) {
                continue;
            }
            $values = [];
            foreach (\is_array($value) ? $value : [$value] as $one) {
                $values[] = (string)$one;
            }
            $out[(string)$name] = $values;
        }
        return $out;
    }

    private static function decodeRequest(Payload $payload): Request
    {
        try {
            if ($payload->codec === Frame::CODEC_PROTO) {
                $c = Proto::decodeRequest($payload->context);
                $cookies = [];
                foreach ($c['cookies'] as $name => $values) {
                    $cookies[(string)$name] = \implode(',', $values);
                }
                $uploads = $c['uploads'] === '' ? null : \json_decode($c['uploads'], true, 512, \JSON_THROW_ON_ERROR);
                $headers = $c['headers'];
                $attributes = $c['attributes'];
            } else {
                $c = \json_decode($payload->context, true, 512, \JSON_THROW_ON_ERROR);
                if (!\is_array($c)) {
                    throw new BadRequestException('the request context is not a JSON object');
                }
                $cookies = [];
                foreach ((array)($c['cookies'] ?? []) as $name => $value) {
                    $cookies[(string)$name] = \is_array($value) ? \implode(',', \array_map('strval', $value)) : (string)$value;
                }
                $uploads = $c['uploads'] ?? null;
                $headers = self::headerMap($c['headers'] ?? []);
                $attributes = $c['attributes'] ?? [];
            }
            $rawQuery = (string)($c['rawQuery'] ?? '');
            \parse_str($rawQuery, $query);
            $parsed = null;
            if (!empty($c['parsed'])) {
                $parsed = $payload->body === '' ? [] : \json_decode($payload->body, true, 512, \JSON_THROW_ON_ERROR);
                $parsed = \is_array($parsed) ? $parsed : [];
            }
            $firstValues = [];
            foreach ((array)$attributes as $name => $value) {
                $firstValues[(string)$name] = \is_array($value) ? ($value[0] ?? null) : $value;
            }
            return new Request(
                remoteAddr: (string)($c['remoteAddr'] ?? ''),
                protocol: (string)($c['protocol'] ?? ''),
                method: (string)($c['method'] ?? ''),
                uri: (string)($c['uri'] ?? ''),
                headers: $headers,
                cookies: $cookies,
                query: $query,
                rawQuery: $rawQuery,
                body: $payload->body,
                parsed: $parsed,
                uploads: \is_array($uploads) ? $uploads : [],
                attributes: $firstValues,
            );
        } catch (BadRequestException $e) {
            throw $e;
        } catch (\JsonException | \UnexpectedValueException $e) {
            $codec = $payload->codec === Frame::CODEC_PROTO ? 'protobuf' : 'JSON';
            throw new BadRequestException("cannot decode the {$codec} request context: {$e->getMessage()}", 0, $e);
        }
    }

    /** @return array<string, list<string>> */
    private static function headerMap(mixed $headers): array
    {
        $out = [];
        foreach ((array)$headers as $name => $values) {
            $list = [];
            foreach (\is_array($values) ? $values : [$values] as $value) {
                if (\is_scalar($value)) {
                    $list[] = (string)$value;
                }
            }
            $out[(string)$name] = $list;
        }
        return $out;
    }
}
