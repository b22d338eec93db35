<?php

declare(strict_types=1);

namespace Warmpool\Http;

/**
 * One HTTP request as the server describes it (PROTOCOL.md §5.3), the same in both codecs.
 *
 * Quirks kept from RoadRunner: `uri` is the absolute URL, `Host` is not in `headers`, and a parsed
 * form body (urlencoded or multipart) arrives as a JSON tree in `body` and decoded in `parsed`.
 */
final class Request
{
    /**
     * @param array<string, list<string>> $headers canonical names (`Content-Type`), every value in order
     * @param array<string, string> $cookies
     * @param array<array-key, mixed> $query parse_str() of the raw query: `a[]=1&a[]=2` gives a list
     * @param array<array-key, mixed>|null $parsed the form fields when the body is a parsed form, else null
     * @param array<array-key, mixed> $uploads tree shaped like the field names; leaves are
     *        ['name', 'mime', 'size', 'error', 'tmpName']
     * @param array<string, mixed> $attributes set by server middleware: name => first value
     */
    public function __construct(
        public readonly string $remoteAddr,
        public readonly string $protocol,
        public readonly string $method,
        public readonly string $uri,
        public readonly array $headers,
        public readonly array $cookies,
        public readonly array $query,
        public readonly string $rawQuery,
        public readonly string $body,
        public readonly ?array $parsed,
        public readonly array $uploads,
        public readonly array $attributes,
    ) {
    }

    /** The URL path, e.g. `/hello` for `http://localhost/hello?x=1`. */
    public function path(): string
    {
        $path = \parse_url($this->uri, \PHP_URL_PATH);
        return \is_string($path) && $path !== '' ? $path : '/';
    }

    /** The first value of a header, case-insensitive, or null. */
    public function header(string $name): ?string
    {
        if (isset($this->headers[$name][0])) {
            return $this->headers[$name][0];
        }
        foreach ($this->headers as $key => $values) {
            if (\strcasecmp((string)$key, $name) === 0 && isset($values[0])) {
                return $values[0];
            }
        }
        return null;
    }

    /** Whether the body was a parsed form (`parsed` then holds its fields). */
    public function isParsed(): bool
    {
        return $this->parsed !== null;
    }
}
