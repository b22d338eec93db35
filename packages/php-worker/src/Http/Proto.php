<?php

declare(strict_types=1);

namespace Warmpool\Http;

/**
 * A minimal protobuf codec for the two `http.v1` messages a worker needs (PROTOCOL.md §5.2):
 * decode `Request`, encode `Response`. Pure PHP, no google/protobuf.
 *
 *   Request:  remote_addr=1, protocol=2, method=3, uri=4 (string), header=5, cookies=6
 *             (map<string,HeaderValue>), raw_query=7 (string), parsed=8 (bool),
 *             uploads=9 (bytes: JSON text), attributes=10 (map<string,HeaderValue>)
 *   Response: status=1 (int64), headers=2 (map<string,HeaderValue>)
 *   HeaderValue: value=1 (repeated bytes)
 *
 * A map entry is a nested message with key = field 1 and value = field 2. Unknown fields are
 * skipped, defaults are omitted when encoding (proto3).
 */
final class Proto
{
    private const VARINT = 0;
    private const FIXED64 = 1;
    private const LENGTH = 2;
    private const FIXED32 = 5;

    /**
     * Decodes an http.v1 Request into the same array shape as the JSON context (§5.4), except that
     * `cookies` and `attributes` keep their value lists and `uploads` is still JSON text.
     *
     * @return array{remoteAddr: string, protocol: string, method: string, uri: string,
     *   headers: array<string, list<string>>, cookies: array<string, list<string>>, rawQuery: string,
     *   parsed: bool, uploads: string, attributes: array<string, list<string>>}
     */
    public static function decodeRequest(string $bytes): array
    {
        $request = [
            'remoteAddr' => '',
            'protocol' => '',
            'method' => '',
            'uri' => '',
            'headers' => [],
            'cookies' => [],
            'rawQuery' => '',
            'parsed' => false,
            'uploads' => '',
            'attributes' => [],
        ];
        $strings = [1 => 'remoteAddr', 2 => 'protocol', 3 => 'method', 4 => 'uri', 7 => 'rawQuery', 9 => 'uploads'];
        $maps = [5 => 'headers', 6 => 'cookies', 10 => 'attributes'];
        $pos = 0;
        $end = \strlen($bytes);
        while ($pos < $end) {
            $tag = self::readVarint($bytes, $pos, $end);
            $field = $tag >> 3;
            $wireType = $tag & 7;
            if (isset($strings[$field]) && $wireType === self::LENGTH) {
                $request[$strings[$field]] = self::readBytes($bytes, $pos, $end);
            } elseif (isset($maps[$field]) && $wireType === self::LENGTH) {
                [$key, $values] = self::decodeMapEntry(self::readBytes($bytes, $pos, $end));
                $request[$maps[$field]][$key] = $values; // proto3 maps: the last entry for a key wins
            } elseif ($field === 8 && $wireType === self::VARINT) {
                $request['parsed'] = self::readVarint($bytes, $pos, $end) !== 0;
            } else {
                self::skip($bytes, $pos, $end, $wireType);
            }
        }
        return $request;
    }

    /** @param array<string, list<string>> $headers */
    public static function encodeResponse(int $status, array $headers): string
    {
        $out = $status === 0 ? '' : "\x08" . self::varint($status);
        foreach ($headers as $name => $values) {
            $out .= self::lengthDelimited(2, self::mapEntry((string)$name, $values));
        }
        return $out;
    }

    /** Decodes an http.v1 Response (the reverse of encodeResponse; for tests and tools). */
    public static function decodeResponse(string $bytes): array
    {
        $response = ['status' => 0, 'headers' => []];
        $pos = 0;
        $end = \strlen($bytes);
        while ($pos < $end) {
            $tag = self::readVarint($bytes, $pos, $end);
            if ($tag === 0x08) {
                $response['status'] = self::readVarint($bytes, $pos, $end);
            } elseif ($tag === 0x12) {
                [$key, $values] = self::decodeMapEntry(self::readBytes($bytes, $pos, $end));
                $response['headers'][$key] = $values;
            } else {
                self::skip($bytes, $pos, $end, $tag & 7);
            }
        }
        return $response;
    }

    /** @param list<string> $values */
    private static function mapEntry(string $key, array $values): string
    {
        $headerValue = '';
        foreach ($values as $value) {
            $headerValue .= self::lengthDelimited(1, (string)$value);
        }
        return self::lengthDelimited(1, $key) . self::lengthDelimited(2, $headerValue);
    }

    /** @return array{0: string, 1: list<string>} */
    private static function decodeMapEntry(string $entry): array
    {
        $key = '';
        $values = [];
        $pos = 0;
        $end = \strlen($entry);
        while ($pos < $end) {
            $tag = self::readVarint($entry, $pos, $end);
            if ($tag === 0x0a) {
                $key = self::readBytes($entry, $pos, $end);
            } elseif ($tag === 0x12) {
                $values = []; // a repeated message field would merge; one HeaderValue is all Go sends
                $value = self::readBytes($entry, $pos, $end);
                $vpos = 0;
                $vend = \strlen($value);
                while ($vpos < $vend) {
                    $vtag = self::readVarint($value, $vpos, $vend);
                    if ($vtag === 0x0a) {
                        $values[] = self::readBytes($value, $vpos, $vend);
                    } else {
                        self::skip($value, $vpos, $vend, $vtag & 7);
                    }
                }
            } else {
                self::skip($entry, $pos, $end, $tag & 7);
            }
        }
        return [$key, $values];
    }

    private static function lengthDelimited(int $field, string $bytes): string
    {
        return self::varint(($field << 3) | self::LENGTH) . self::varint(\strlen($bytes)) . $bytes;
    }

    /** Unsigned LEB128; a negative int is written as its 64-bit two's complement (10 bytes). */
    public static function varint(int $n): string
    {
        $out = '';
        while ($n < 0 || $n >= 0x80) {
            $out .= \chr(($n & 0x7f) | 0x80);
            $n = ($n >> 7) & 0x01ffffffffffffff; // logical shift right by 7
        }
        return $out . \chr($n);
    }

    private static function readVarint(string $bytes, int &$pos, int $end): int
    {
        $result = 0;
        for ($shift = 0; $shift < 64; $shift += 7) {
            if ($pos >= $end) {
                throw new \UnexpectedValueException('protobuf context truncated inside a varint');
            }
            $byte = \ord($bytes[$pos++]);
            $result |= ($byte & 0x7f) << $shift;
            if ($byte < 0x80) {
                return $result;
            }
        }
        throw new \UnexpectedValueException('protobuf varint is too long');
    }

    private static function readBytes(string $bytes, int &$pos, int $end): string
    {
        $length = self::readVarint($bytes, $pos, $end);
        if ($length < 0 || $pos + $length > $end) {
            throw new \UnexpectedValueException('protobuf field runs past the end of the context');
        }
        $value = \substr($bytes, $pos, $length);
        $pos += $length;
        return $value;
    }

    private static function skip(string $bytes, int &$pos, int $end, int $wireType): void
    {
        switch ($wireType) {
            case self::VARINT:
                self::readVarint($bytes, $pos, $end);
                return;
            case self::FIXED64:
                $pos += 8;
                break;
            case self::LENGTH:
                self::readBytes($bytes, $pos, $end);
                return;
            case self::FIXED32:
                $pos += 4;
                break;
            default:
                throw new \UnexpectedValueException("protobuf wire type {$wireType} is not supported");
        }
        if ($pos > $end) {
            throw new \UnexpectedValueException('protobuf field runs past the end of the context');
        }
    }
}
