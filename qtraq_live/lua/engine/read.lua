-- Reads: consistent with their version because the script runs atomically.

-- QueueState with its waiting tickets (in order) and those at its counters.
local function queue_view(qid)
  local waiting = {}
  for _, id in ipairs(redis.call('ZRANGE', K.waiting(qid), 0, -1)) do
    waiting[#waiting + 1] = ticket_json(ticket_hash(id))
  end
  local serving = {}
  local flat = redis.call('HGETALL', K.counters(qid))
  for i = 2, #flat, 2 do
    local t = ticket_hash(flat[i])
    if t then serving[#serving + 1] = ticket_json(t) end
  end
  return queue_json(queue_hash(qid), ',"waiting":[' .. table.concat(waiting, ',') ..
                    '],"now_serving":[' .. table.concat(serving, ',') .. ']')
end

function ops.queue_snapshot()
  local clinic = redis.call('HGET', K.queue(A.queue), 'clinic')
  if not clinic then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  return '{"ok":true,"v":' .. version_json(clinic) .. ',"queue":' .. queue_view(A.queue) .. '}'
end

function ops.clinic_snapshot()
  if redis.call('EXISTS', K.clinic(A.clinic)) == 0 then return fail('not_found', 'unknown clinic ' .. A.clinic, 'clinic') end
  local queues = {}
  for _, qid in ipairs(redis.call('ZRANGE', K.clinic_queues(A.clinic), 0, -1)) do
    queues[#queues + 1] = queue_view(qid)
  end
  return '{"ok":true,"v":' .. version_json(A.clinic) .. ',"clinic":' .. clinic_json(hgetall(K.clinic(A.clinic))) ..
    ',"queues":[' .. table.concat(queues, ',') .. '],"recent":[' ..
    table.concat(redis.call('LRANGE', K.recent(A.clinic), 0, RECENT_CALLS - 1), ',') .. ']}'
end

-- Definitions without tickets (issue #17): what pages and the API show of a clinic and its
-- queues costs one hash and one count per queue, however many wait.
local function queue_definition(qid)
  return queue_json(queue_hash(qid), ',"n_waiting":' .. redis.call('ZCARD', K.waiting(qid)))
end

function ops.clinic_definition()
  local clinic = hgetall(K.clinic(A.clinic))
  if not clinic then return fail('not_found', 'unknown clinic ' .. A.clinic, 'clinic') end
  local queues = {}
  if not A.bare then
    for _, qid in ipairs(redis.call('ZRANGE', K.clinic_queues(A.clinic), 0, -1)) do
      queues[#queues + 1] = queue_definition(qid)
    end
  end
  return '{"ok":true,"v":' .. version_json(A.clinic) .. ',"clinic":' .. clinic_json(clinic) ..
    ',"queues":[' .. table.concat(queues, ',') .. ']}'
end

function ops.queue_definition()
  local clinic = redis.call('HGET', K.queue(A.queue), 'clinic')
  if not clinic then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  return '{"ok":true,"v":' .. version_json(clinic) .. ',"queue":' .. queue_definition(A.queue) ..
    ',"clinic":' .. clinic_json(hgetall(K.clinic(clinic))) .. '}'
end

function ops.ticket()
  local id = A.ticket
  if A.token then
    id = redis.call('GET', K.token(A.token))
    if not id then return fail('not_found', 'unknown ticket token', 'token') end
  end
  local t, err = load_ticket(id)
  if not t then return err end
  return '{"ok":true,"v":' .. version_json(t.clinic) .. ',"ticket":' .. ticket_json(t) .. ',"rank":' .. rank_of(t) ..
    ',"queue":' .. queue_json(queue_hash(t.queue)) .. ',"token":' .. jtext(t.token) ..
    ',"clinic_name":' .. jtext(redis.call('HGET', K.clinic(t.clinic), 'name')) .. '}'
end

