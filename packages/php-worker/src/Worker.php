<?php

declare(strict_types=1);

namespace Warmpool;

/**
 * The worker side of the protocol: wait for a payload, answer it (whole or streamed), report an
 * error, or ask to be retired. Runs under warmpool and under RoadRunner alike.
 *
 * Stray output cannot corrupt the protocol: on pipes, echo/print and PHP errors go to STDERR (the
 * server logs them); under warmpool the protocol can run on fds 3/4 instead, and stdout is a plain log.
 * A write to php://stdout or STDOUT skips PHP's output layer, so on pipes it still breaks the
 * protocol: a framework app whose logger or console writes there takes `server.relay: fds`.
 */
final class Worker
{
    private const PING_EVERY = 5;

    private int $streamFrames = 0;
    private bool $streaming = false;
    /** the output buffers of a worker between requests (the interceptor's, when it runs) */
    private int $outputLevel;

    /**
     * @param bool|null $interceptOutput route echo/print and PHP errors to STDERR; null (default) does
     *        so only when the protocol runs on stdout (pipes). With the fds relay stdout is a plain
     *        log the server reads line by line, so output is left alone there.
     */
    public function __construct(private readonly Relay $relay, ?bool $interceptOutput = null)
    {
        if ($interceptOutput ?? $relay->usesStdout) {
            self::interceptOutput();
        }
        $this->outputLevel = \ob_get_level();
    }

    public static function create(?bool $interceptOutput = null): self
    {
        return new self(Relay::fromEnvironment(), $interceptOutput);
    }

    /** Next request payload; null when the server asks the worker to stop (or goes away). */
    public function waitPayload(): ?Payload
    {
        $this->closeRequestBuffers();
        while (true) {
            $frame = $this->relay->read();
            if ($frame === null) {
                return null;
            }
            if ($frame->flags & Frame::CONTROL) {
                $command = \json_decode($frame->payload, true);
                if (isset($command['pid'])) {
                    $this->relay->write(Frame::encode(Frame::CONTROL, \json_encode(['pid' => \getmypid()])));
                    continue;
                }
                if (!empty($command['stop'])) {
                    return null;
                }
                continue;
            }
            if ($frame->control & (Frame::PONG | Frame::STOP)) {
                continue; // late answers to a finished stream
            }
            $codec = $frame->flags & Frame::CODEC_PROTO ? Frame::CODEC_PROTO : Frame::CODEC_JSON;
            return new Payload($frame->context(), $frame->body(), $codec);
        }
    }

    /**
     * Sends a reply. With $endOfStream false the frame carries STREAM and more must follow; the last
     * one has $endOfStream true. Throws StreamStoppedException when the server cancelled the stream.
     */
    public function respond(Payload $payload, bool $endOfStream = true): void
    {
        $control = 0;
        if (!$endOfStream || $this->streaming) {
            $this->checkStream();
        }
        if (!$endOfStream) {
            $control = Frame::STREAM;
            if (++$this->streamFrames % (self::PING_EVERY + 1) === 0) {
                $control |= Frame::PING;
            }
            $this->streaming = true;
        } else {
            $this->streaming = false;
            $this->streamFrames = 0;
        }
        $this->relay->writeData($payload->codec, $payload->context, $payload->body, $control);
    }

    /** Reports a failed request; the worker stays in service. Never call it after respond() for the same request. */
    public function error(string $message): void
    {
        $this->streaming = false;
        $this->streamFrames = 0;
        $this->relay->write(Frame::encode(Frame::ERROR, $message));
    }

    /** Asks the server to retire this worker; the current request is re-run on another worker. */
    public function stop(): void
    {
        $this->relay->write(Frame::data(0, '{"stop":true}', ''));
    }

    /** Ends a stream the server cancelled: the harmless empty terminator (PROTOCOL.md §11.15). */
    public function endCancelledStream(): void
    {
        $this->streaming = false;
        $this->streamFrames = 0;
        $this->relay->write(Frame::data(0, '', ''));
    }

    /** Reads what the server sent during a stream: PONGs are consumed, STOP cancels. */
    private function checkStream(): void
    {
        while (($frame = $this->relay->poll()) !== null) {
            if ($frame->control & Frame::STOP) {
                throw new StreamStoppedException('the server cancelled the stream');
            }
        }
    }

    /**
     * Output buffers a request left open (an ob_start() without its end) are closed, their output
     * logged: php-fpm closes them with the request, a worker kept them, one more each time, and
     * every later echo or var_dump of the process went into them, unseen. Each is read and cleaned,
     * never flushed: a callback that throws on a flush makes PHP pass the buffer on raw and turn off
     * the handlers below it, the SDK's capture too, and the bytes reached the protocol stream (the
     * next request's 502). A cleaned buffer's callback may throw: its output is still logged.
     */
    private function closeRequestBuffers(): void
    {
        while (\ob_get_level() > $this->outputLevel) {
            $output = \ob_get_contents();
            try {
                if (!@\ob_end_clean()) {
                    break; // a buffer that may not be removed
                }
            } catch (\Throwable $error) {
                \fwrite(\STDERR, 'warmpool: an output buffer left open threw as it was closed: ' . $error->getMessage() . "\n");
            }
            if (\is_string($output) && $output !== '') {
                echo $output; // to the buffer below: the capture (stderr), or stdout, a log, with the fds relay
            }
        }
        // the request closed every buffer, the capture's too (`while (ob_get_level()) ob_end_clean();`):
        // echo would reach the protocol stream, and the next request failed
        if (self::$intercepting && \ob_get_level() < $this->outputLevel) {
            self::startInterceptor();
        }
    }

    private static bool $intercepting = false;

    /** echo/print and PHP error output go to STDERR instead of the protocol stream. */
    public static function interceptOutput(): void
    {
        if (self::$intercepting) {
            return;
        }
        self::$intercepting = true;
        // Errors must never reach STDOUT (the protocol stream). When PHP already logs them to
        // stderr (log_errors on, no error_log: php-cli's default), displaying them as well would
        // print each one twice.
        $loggedToStderr = \filter_var(\ini_get('log_errors'), \FILTER_VALIDATE_BOOLEAN)
            && (string)\ini_get('error_log') === '';
        \ini_set('display_errors', $loggedToStderr ? '0' : 'stderr');
        self::startInterceptor();
    }

    /** The output buffer that sends echo/print to STDERR. */
    private static function startInterceptor(): void
    {
        \ob_start(static function (string $chunk): string {
            if ($chunk !== '') {
                \fwrite(\STDERR, $chunk);
            }
            return '';
        }, 1);
    }
}
