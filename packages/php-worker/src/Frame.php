<?php

declare(strict_types=1);

namespace Warmpool;

/** One goridge v1 frame (PROTOCOL.md §2). */
final class Frame
{
    public const CONTROL = 0x01;
    public const CODEC_JSON = 0x08;
    public const ERROR = 0x40;
    public const CODEC_PROTO = 0x80;

    public const STREAM = 0x01;
    public const STOP = 0x02;
    public const PING = 0x04;
    public const PONG = 0x08;

    /** @param list<int> $options */
    public function __construct(
        public readonly int $flags,
        public readonly string $payload,
        public readonly array $options = [],
        public readonly int $control = 0,
    ) {
    }

    /** The whole frame as bytes: header, options, payload (written with one fwrite). */
    public static function encode(int $flags, string $payload, array $options = [], int $control = 0): string
    {
        return self::head($flags, \strlen($payload), $options, $control) . $payload;
    }

    /** A data frame: one option (the context length), payload = context . body. */
    public static function data(int $flags, string $context, string $body, int $control = 0): string
    {
        return self::encode($flags, $context . $body, [\strlen($context)], $control);
    }

    /**
     * A data frame up to the end of its context: header, option and context. The body follows on
     * the wire as it is, so a large body is written without being copied into a frame string.
     */
    public static function dataHead(int $flags, string $context, int $bodyLength, int $control = 0): string
    {
        return self::head($flags, \strlen($context) + $bodyLength, [\strlen($context)], $control) . $context;
    }

    /** Header (with its CRC) and options of a frame whose payload is $payloadLength bytes. */
    private static function head(int $flags, int $payloadLength, array $options, int $control): string
    {
        $head = \pack('CCV', (1 << 4) | (3 + \count($options)), $flags, $payloadLength);
        $out = $head . \pack('V', \crc32($head)) . \chr($control) . "\0";
        foreach ($options as $option) {
            $out .= \pack('V', $option);
        }
        return $out;
    }

    public function context(): string
    {
        return isset($this->options[0]) ? \substr($this->payload, 0, $this->options[0]) : '';
    }

    public function body(): string
    {
        return isset($this->options[0]) ? (string)\substr($this->payload, $this->options[0]) : $this->payload;
    }
}
