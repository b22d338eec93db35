<?php

declare(strict_types=1);

namespace Warmpool;

use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\ServerRequestFactoryInterface;
use Psr\Http\Message\ServerRequestInterface;
use Psr\Http\Message\StreamFactoryInterface;
use Psr\Http\Message\StreamInterface;
use Psr\Http\Message\UploadedFileFactoryInterface;
use Warmpool\Http\BadRequestException;
use Warmpool\Http\Request;

/**
 * PSR-7 bridge over HttpWorker, shaped like RoadRunner's PSR7Worker: requests become
 * ServerRequestInterface (server params, cookies, query, parsed body, uploaded files, attributes)
 * and a ResponseInterface goes back whole, or in chunks of $chunkSize bytes.
 *
 * Needs psr/http-message, psr/http-factory and a PSR-17 factory (e.g. nyholm/psr7). This file loads
 * without them (use statements autoload nothing); the constructor says what is missing.
 *
 *     $factory = new Nyholm\Psr7\Factory\Psr17Factory();
 *     $psr7 = new Warmpool\Psr7Worker(Warmpool\Worker::create(), $factory, $factory, $factory);
 *     while ($request = $psr7->waitRequest()) {
 *         $psr7->respond($factory->createResponse(200)->withBody($factory->createStream('hi')));
 *     }
 */
final class Psr7Worker
{
    /** 0: the whole body in one frame; > 0: the body is streamed in chunks of this many bytes. */
    public int $chunkSize = 0;

    public readonly HttpWorker $http;

    /** @var array<string, mixed> $_SERVER as the worker started; every request's server params build on it */
    private array $originalServer;

    public function __construct(
        Worker $worker,
        private readonly ServerRequestFactoryInterface $requestFactory,
        private readonly StreamFactoryInterface $streamFactory,
        private readonly UploadedFileFactoryInterface $uploadsFactory,
    ) {
        $this->http = new HttpWorker($worker);
        $this->originalServer = $_SERVER;
    }

    /** Whether the PSR-7 and PSR-17 interfaces are installed (and this bridge can be used). */
    public static function isAvailable(): bool
    {
        return \interface_exists(ServerRequestFactoryInterface::class)
            && \interface_exists(StreamFactoryInterface::class)
            && \interface_exists(UploadedFileFactoryInterface::class);
    }

    /**
     * With nyholm/psr7 installed: a bridge using its Psr17Factory for all three factories.
     *
     * @throws \LogicException when PSR-7/PSR-17 or nyholm/psr7 are not installed
     */
    public static function create(?bool $interceptOutput = null): self
    {
        if (!self::isAvailable()) {
            throw new \LogicException('Psr7Worker needs psr/http-message and psr/http-factory (composer require nyholm/psr7, or apt-get install php-nyholm-psr7)');
        }
        $factoryClass = 'Nyholm\\Psr7\\Factory\\Psr17Factory';
        if (!\class_exists($factoryClass)) {
            throw new \LogicException('Psr7Worker::create() uses nyholm/psr7; install it or pass your PSR-17 factories to new Psr7Worker()');
        }
        $factory = new $factoryClass();
        return new self(Worker::create($interceptOutput), $factory, $factory, $factory);
    }

    /**
     * The next request; null when the server asks the worker to stop.
     *
     * @throws BadRequestException when the context cannot be decoded: answer it with a 400
     */
    public function waitRequest(): ?ServerRequestInterface
    {
        $request = $this->http->waitRequest();
        return $request === null ? null : $this->mapRequest($request);
    }

    /** Sends the response: the whole body in one frame, or streamed when $chunkSize > 0. */
    public function respond(ResponseInterface $response): void
    {
        $headers = $response->getHeaders();
        if ($this->chunkSize > 0) {
            $this->http->respondStream($response->getStatusCode(), self::chunks($response->getBody(), $this->chunkSize), $headers);
            return;
        }
        $this->http->respond($response->getStatusCode(), (string)$response->getBody(), $headers);
    }

    /** Ends the current request with a worker error: the server answers 500 and keeps this worker. */
    public function error(string $message): void
    {
        $this->http->error($message);
    }

    /** Whole ServerRequest from the decoded request, as RoadRunner's PSR7Worker builds it. */
    private function mapRequest(Request $request): ServerRequestInterface
    {
        $psr = $this->requestFactory->createServerRequest($request->method, $request->uri, $this->serverParams($request))
            ->withProtocolVersion(self::protocolVersion($request->protocol))
            ->withCookieParams($request->cookies)
            ->withQueryParams($request->query)
            ->withUploadedFiles($this->wrapUploads($request->uploads));
        foreach ($request->attributes as $name => $value) {
            $psr = $psr->withAttribute($name, $value);
        }
        foreach ($request->headers as $name => $values) {
            $psr = $psr->withHeader($name, $values);
        }
        if ($request->parsed !== null) {
            $psr = $psr->withParsedBody($request->parsed);
        }
        if ($request->body !== '') {
            // for a parsed form this is the JSON text of the fields, as under RoadRunner
            $psr = $psr->withBody($this->streamFactory->createStream($request->body));
        }
        return $psr;
    }

    /** @return array<string, mixed> */
    private function serverParams(Request $request): array
    {
        $now = \microtime(true);
        $server = $this->originalServer;
        $server['REQUEST_URI'] = $request->uri; // absolute URL: a RoadRunner quirk apps rely on
        $server['REQUEST_TIME'] = (int)$now;
        $server['REQUEST_TIME_FLOAT'] = $now;
        $server['REMOTE_ADDR'] = $request->remoteAddr;
        $server['REQUEST_METHOD'] = $request->method;
        $server['SERVER_PROTOCOL'] = $request->protocol;
        $server['QUERY_STRING'] = $request->rawQuery;
        $server['HTTP_USER_AGENT'] = '';
        foreach ($request->headers as $name => $values) {
            $key = \strtoupper(\str_replace('-', '_', $name));
            if ($key === 'CONTENT_TYPE' || $key === 'CONTENT_LENGTH') {
                $server[$key] = \implode(', ', $values);
            } else {
                $server['HTTP_' . $key] = \implode(', ', $values);
            }
        }
        return $server;
    }

    private static function protocolVersion(string $protocol): string
    {
        return match ($protocol) {
            'HTTP/1.0' => '1.0',
            'HTTP/2', 'HTTP/2.0' => '2',
            'HTTP/3', 'HTTP/3.0' => '3',
            default => '1.1',
        };
    }

    /**
     * Upload tree → the same tree of UploadedFileInterface. A leaf streams its temp file when its
     * error is UPLOAD_ERR_OK; otherwise it gets an empty stream and keeps the error code.
     *
     * @param array<array-key, mixed> $files
     * @return array<array-key, mixed>
     */
    private function wrapUploads(array $files): array
    {
        $out = [];
        foreach ($files as $key => $file) {
            if (!\is_array($file)) {
                continue;
            }
            if (!self::isUploadLeaf($file)) {
                $out[$key] = $this->wrapUploads($file);
                continue;
            }
            $error = (int)($file['error'] ?? \UPLOAD_ERR_NO_FILE);
            $tmpName = (string)($file['tmpName'] ?? '');
            $stream = $error === \UPLOAD_ERR_OK && $tmpName !== ''
                ? $this->streamFactory->createStreamFromFile($tmpName, 'rb')
                : $this->streamFactory->createStream('');
            $out[$key] = $this->uploadsFactory->createUploadedFile(
                $stream,
                isset($file['size']) ? (int)$file['size'] : null,
                $error,
                isset($file['name']) ? (string)$file['name'] : null,
                isset($file['mime']) ? (string)$file['mime'] : null,
            );
        }
        return $out;
    }

    /** @param array<array-key, mixed> $file */
    private static function isUploadLeaf(array $file): bool
    {
        return isset($file['name']) && !\is_array($file['name']) && \array_key_exists('error', $file) && !\is_array($file['error']);
    }

    /** @return \Generator<int, string> */
    private static function chunks(StreamInterface $body, int $size): \Generator
    {
        if ($body->isSeekable()) {
            $body->rewind();
        }
        while (!$body->eof()) {
            $chunk = $body->read($size);
            if ($chunk === '') {
                break;
            }
            yield $chunk;
        }
    }
}
