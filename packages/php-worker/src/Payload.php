<?php

declare(strict_types=1);

namespace Warmpool;

/** One request or reply: the context (JSON or protobuf metadata) and the body. */
final class Payload
{
    public function __construct(
        public readonly string $context,
        public readonly string $body,
        /** Frame::CODEC_JSON or Frame::CODEC_PROTO, as the server sent it */
        public readonly int $codec = Frame::CODEC_JSON,
    ) {
    }
}
