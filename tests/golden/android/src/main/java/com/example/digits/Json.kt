package com.example.digits

/** A small JSON reader (objects, arrays, strings, numbers, booleans, null) for the bundled manifest. */
internal object Json {
    fun parse(text: String): Any? {
        val reader = Reader(text)
        val value = reader.value()
        reader.skipSpace()
        if (reader.pos != text.length) throw ManifestException("unexpected text at offset ${reader.pos}")
        return value
    }

    private class Reader(val text: String) {
        var pos = 0

        fun skipSpace() {
            while (pos < text.length && text[pos].isWhitespace()) pos++
        }

        fun value(): Any? {
            skipSpace()
            if (pos >= text.length) throw ManifestException("unexpected end of JSON")
            return when (text[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> number()
            }
        }

        private fun literal(word: String, result: Any?): Any? {
            if (!text.startsWith(word, pos)) throw ManifestException("bad literal at offset $pos")
            pos += word.length
            return result
        }

        private fun obj(): Map<String, Any?> {
            val result = LinkedHashMap<String, Any?>()
            pos++
            skipSpace()
            if (text[pos] == '}') { pos++; return result }
            while (true) {
                skipSpace()
                val key = string()
                skipSpace()
                expect(':')
                result[key] = value()
                skipSpace()
                if (text[pos] == ',') { pos++; continue }
                expect('}')
                return result
            }
        }

        private fun array(): List<Any?> {
            val result = ArrayList<Any?>()
            pos++
            skipSpace()
            if (text[pos] == ']') { pos++; return result }
            while (true) {
                result.add(value())
                skipSpace()
                if (text[pos] == ',') { pos++; continue }
                expect(']')
                return result
            }
        }

        private fun string(): String {
            expect('"')
            val out = StringBuilder()
            while (true) {
                val c = text[pos++]
                when {
                    c == '"' -> return out.toString()
                    c != '\\' -> out.append(c)
                    else -> {
                        val e = text[pos++]
                        when (e) {
                            'n' -> out.append('\n')
                            't' -> out.append('\t')
                            'r' -> out.append('\r')
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000C')
                            'u' -> { out.append(text.substring(pos, pos + 4).toInt(16).toChar()); pos += 4 }
                            else -> out.append(e)
                        }
                    }
                }
            }
        }

        private fun number(): Any {
            val start = pos
            while (pos < text.length && (text[pos].isDigit() || text[pos] in "+-.eE")) pos++
            val token = text.substring(start, pos)
            if (token.isEmpty()) throw ManifestException("unexpected character '${text[start]}' at offset $start")
            return if (token.any { it in ".eE" }) token.toDouble() else token.toLong()
        }

        private fun expect(c: Char) {
            if (pos >= text.length || text[pos] != c) throw ManifestException("expected '$c' at offset $pos")
            pos++
        }
    }
}
