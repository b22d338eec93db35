<?php

declare(strict_types=1);

namespace Warmpool;

/**
 * The byte stream to and from the server. Chosen from the environment the server sets:
 * WARMPOOL_RELAY_FDS=3,4 (warmpool: protocol on fds 3/4, stdout stays a log), else RR_RELAY
 * (pipes = stdin/stdout, unix:///path, tcp://host:port), as RoadRunner workers read it.
 */
final class Relay
{
    /** Bodies from this size on are written after their frame head instead of copied into it. */
    private const LARGE_BODY = 65536;

    /** @param resource $in @param resource $out */
    private function __construct(
        private $in,
        private $out,
        public readonly bool $usesStdout,
    ) {
        // Let reads and writes on a socket block until done: with a timeout PHP sends with
        // MSG_DONTWAIT, so a 1 MiB frame went out in many partial sends with a poll between each.
        @\stream_set_timeout($in, -1);
        @\stream_set_timeout($out, -1);
    }

    public static function fromEnvironment(): self
    {
        $fds = \getenv('WARMPOOL_RELAY_FDS');
        if (\is_string($fds) && \preg_match('/^(\d+),(\d+)$/', $fds, $m)) {
            $in = \fopen("php://fd/{$m[1]}", 'rb');
            $out = \fopen("php://fd/{$m[2]}", 'wb');
            if ($in === false || $out === false) {
                throw new \RuntimeException("cannot open relay fds {$fds}");
            }
            return new self($in, $out, false);
        }
        $dsn = \getenv('RR_RELAY') ?: 'pipes';
        if ($dsn === 'pipes') {
            return new self(\STDIN, \STDOUT, true);
        }
        if (\str_starts_with($dsn, 'unix://') || \str_starts_with($dsn, 'tcp://')) {
            $socket = \stream_socket_client($dsn, $errno, $error, 10);
            if ($socket === false) {
                throw new \RuntimeException("cannot connect to relay {$dsn}: {$error}");
            }
            return new self($socket, $socket, false);
        }
        throw new \RuntimeException("unsupported RR_RELAY \"{$dsn}\"");
    }

    /** @param resource $in @param resource $out */
    public static function fromStreams($in, $out): self
    {
        return new self($in, $out, $out === \STDOUT);
    }

    /** Next frame, or null at end of input (the server went away). */
    public function read(): ?Frame
    {
        $header = $this->readExactly(12);
        if ($header === null) {
            return null;
        }
        $h = \unpack('Cvh/Cflags/Vsize/Vcrc/Ccontrol', $header);
        $words = $h['vh'] & 0x0f;
        if (($h['vh'] >> 4) !== 1 || $words < 3 || \crc32(\substr($header, 0, 6)) !== $h['crc']) {
            throw new \RuntimeException('invalid frame header from the server: ' . \bin2hex($header));
        }
        $options = [];
        if ($words > 3) {
            $raw = $this->readExactly(($words - 3) * 4) ?? throw new \RuntimeException('relay closed inside a frame');
            $options = \array_values(\unpack('V*', $raw));
        }
        $payload = $h['size'] === 0 ? '' : ($this->readExactly($h['size']) ?? throw new \RuntimeException('relay closed inside a frame'));
        return new Frame($h['flags'], $payload, $options, $h['control']);
    }

    /** A frame already waiting (used to notice STOP during a stream), without blocking. */
    public function poll(): ?Frame
    {
        $read = [$this->in];
        $write = $except = null;
        if (@\stream_select($read, $write, $except, 0, 0) > 0) {
            return $this->read();
        }
        return null;
    }

    /** A data frame (Frame::data); a large body is written as it is, after the frame head, not copied. */
    public function writeData(int $flags, string $context, string $body, int $control = 0): void
    {
        if (\strlen($body) < self::LARGE_BODY) {
            $this->write(Frame::data($flags, $context, $body, $control));
            return;
        }
        $this->write(Frame::dataHead($flags, $context, \strlen($body), $control));
        $this->write($body);
    }

    public function write(string $frame): void
    {
        $length = \strlen($frame);
        for ($written = 0; $written < $length; $written += $n) {
            $n = \fwrite($this->out, $written === 0 ? $frame : \substr($frame, $written));
            if ($n === false || $n === 0) {
                throw new \RuntimeException('relay closed: cannot write to the server');
            }
        }
        \fflush($this->out);
    }

    private function readExactly(int $length): ?string
    {
        if ($length >= self::LARGE_BODY) {
            return $this->readLarge($length);
        }
        $data = '';
        while (\strlen($data) < $length) {
            $chunk = \fread($this->in, $length - \strlen($data));
            if ($chunk === false || $chunk === '') {
                if (\feof($this->in)) {
                    if ($data === '') {
                        return null;
                    }
                    throw new \RuntimeException('relay closed inside a frame');
                }
                continue;
            }
            $data .= $chunk;
        }
        return $data;
    }

    /**
     * A large payload (inside a frame, so the stream is not at its end): read unbuffered straight
     * into one string, in as few reads as the kernel allows, instead of 8 KiB buffered reads appended
     * one by one (what was buffered already is taken first).
     */
    private function readLarge(int $length): string
    {
        \stream_set_read_buffer($this->in, 0);
        try {
            $data = \stream_get_contents($this->in, $length);
        } finally {
            \stream_set_read_buffer($this->in, 8192);
        }
        if ($data === false || \strlen($data) !== $length) {
            throw new \RuntimeException('relay closed inside a frame');
        }
        return $data;
    }
}
